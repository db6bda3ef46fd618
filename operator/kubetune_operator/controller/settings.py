"""Operator settings: one frozen value, built once by `kubetune operator` from its flags.

Each flag falls back to a KUBETUNE_* environment variable (the Helm chart's way in), so the environment is
one input of this model, read by the command line and never again: the handlers receive the settings
through Kopf's `memo` (controller/handlers.py). The defaults below are the only ones; the flags show them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from kubetune_operator.api.evaljob import DEFAULT_EVALUATOR_IMAGE
from kubetune_operator.api.finetunejob import DEFAULT_TRAINER_IMAGE
from kubetune_operator.controller.policies.platform import PlatformPolicy

Launcher = Literal["accelerate", "python"]


def parse_peers(text: str) -> tuple[dict[str, Any], ...]:
    """A JSON list of NetworkPolicyPeers (the chart renders it); empty: none."""
    peers = json.loads(text or "[]")
    if not isinstance(peers, list) or not all(isinstance(peer, dict) for peer in peers):
        raise ValueError("must be a JSON list of NetworkPolicyPeer objects")
    return tuple(peers)


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the builders and policies need that is not in the FineTuneJob/EvalJob itself."""

    trainer_image: str = DEFAULT_TRAINER_IMAGE
    """The image of trainer pods of FineTuneJobs that leave spec.image unset (a platform's mirror)."""
    evaluator_image: str = DEFAULT_EVALUATOR_IMAGE
    trainer_module: str = "kubetune_trainer"
    """Python module started in trainer pods (after `accelerate launch`); tests use a stand-in."""
    evaluator_module: str = "kubetune_evaluator"
    launcher: Launcher = "accelerate"
    """`accelerate`: `accelerate launch ... -m <module>`; `python`: `python -m <module>` (one process per
    pod, rank and master in KUBETUNE_* variables): fast lifecycle tests without importing torch."""
    python_executable: str = "python"
    accelerate_executable: str = "accelerate"
    main_process_port: int = 29500
    progress_port: int = 9400
    progress_timeout_seconds: float = 1.0
    reconcile_interval_seconds: float = 10.0
    """How often a live job is re-read: progress, pod failures, deadline, suspend (Kopf timer)."""
    pending_timeout_seconds: float = 300.0
    """For jobs without runPolicy.pendingTimeoutSeconds: how long pods may stay unscheduled before the job
    fails with Unschedulable (other causes: PendingTimeout after at least 600 s)."""
    restart_backoff_seconds: float = 10.0
    """The wait before the first gang restart after a worker failure; doubled after each restart, up to
    policies.restart.MAX_RESTART_BACKOFF_SECONDS (the kubelet's CrashLoopBackOff). Disruptions restart at
    once. 0: no back-off (tests)."""
    run_as_user: int = 1000
    pod_storage_retry_seconds: float = 60.0
    """KUBETUNE_STORAGE_RETRY_SECONDS of every trainer/evaluator container (chart value
    `operator.podStorageRetrySeconds`): how long each S3 call in a pod is retried while S3 does not answer
    before the job fails with StorageUnreachable; 0: botocore's three attempts only."""
    policy: PlatformPolicy = field(default_factory=PlatformPolicy)
    """The platform policy (chart values `policy`, JSON); unset: every image, ServiceAccount, ... allowed."""
    network_policy: bool = True
    """One NetworkPolicy per job (chart value `networkPolicy.enabled`): ingress to its pods only from its
    own pods (rendezvous, any port) and to the progress port from `network_policy_metrics_from`."""
    network_policy_metrics_from: tuple[dict[str, Any], ...] = ()
    """Who else may read /progress and /metrics (the operator's pods, Prometheus): NetworkPolicyPeers, as the
    chart renders them; none: only the job's own pods (an operator outside the cluster, the local stack)."""
    memory_preflight_endpoint: str | None = None
    """S3 endpoint the operator reads models' config.json from, with its own credentials, for the memory
    preflight of jobs that set resources.gpuMemory and use this storage.endpoint (`aws`: AWS S3, for jobs
    without one); unset: no operator preflight (the trainer still checks). controller/memory_preflight.py."""


DEFAULTS = OperatorSettings()
