"""Operator settings: command-line flags with KUBETUNE_* environment defaults, read once at startup."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from kubetune_operator.controller.policies.platform import PlatformPolicy

Launcher = Literal["accelerate", "python"]


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _peers(name: str) -> tuple[dict[str, Any], ...]:
    """A JSON list of NetworkPolicyPeers (the chart renders it); unset or empty: none."""
    peers = json.loads(_env(name, "") or "[]")
    if not isinstance(peers, list) or not all(isinstance(peer, dict) for peer in peers):
        raise ValueError(f"{name} must be a JSON list of NetworkPolicyPeer objects")
    return tuple(peers)


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the builders and policies need that is not in the FineTuneJob/EvalJob itself."""

    trainer_module: str = field(default_factory=lambda: _env("KUBETUNE_TRAINER_MODULE", "kubetune_trainer"))
    """Python module started in trainer pods (after `accelerate launch`); tests use a stand-in."""
    evaluator_module: str = field(
        default_factory=lambda: _env("KUBETUNE_EVALUATOR_MODULE", "kubetune_evaluator")
    )
    launcher: Launcher = field(
        default_factory=lambda: (
            "python" if _env("KUBETUNE_LAUNCHER", "accelerate") == "python" else "accelerate"
        )
    )
    """`accelerate`: `accelerate launch ... -m <module>`; `python`: `python -m <module>` (one process per
    pod, rank and master in KUBETUNE_* variables): fast lifecycle tests without importing torch."""
    python_executable: str = field(default_factory=lambda: _env("KUBETUNE_POD_PYTHON", "python"))
    accelerate_executable: str = field(default_factory=lambda: _env("KUBETUNE_POD_ACCELERATE", "accelerate"))
    main_process_port: int = 29500
    progress_port: int = field(default_factory=lambda: int(_env("KUBETUNE_PROGRESS_PORT", "9400")))
    progress_timeout_seconds: float = 1.0
    reconcile_interval_seconds: float = field(
        default_factory=lambda: float(_env("KUBETUNE_RECONCILE_INTERVAL", "10"))
    )
    """How often a live job is re-read: progress, pod failures, deadline, suspend (Kopf timer)."""
    pending_timeout_seconds: float = field(
        default_factory=lambda: float(_env("KUBETUNE_PENDING_TIMEOUT", "300"))
    )
    """For jobs without runPolicy.pendingTimeoutSeconds: how long pods may stay unscheduled before the job
    fails with Unschedulable (other causes: PendingTimeout after at least 600 s)."""
    run_as_user: int = 1000
    policy: PlatformPolicy = field(
        default_factory=lambda: PlatformPolicy.from_json(_env("KUBETUNE_POLICY", ""))
    )
    """The platform policy (chart values `policy`, JSON); unset: every image, ServiceAccount, ... allowed."""
    network_policy: bool = field(default_factory=lambda: _env("KUBETUNE_NETWORK_POLICY", "true") == "true")
    """One NetworkPolicy per job (chart value `networkPolicy.enabled`): ingress to its pods only from its
    own pods (rendezvous, any port) and to the progress port from `network_policy_metrics_from`."""
    network_policy_metrics_from: tuple[dict[str, Any], ...] = field(
        default_factory=lambda: _peers("KUBETUNE_NETWORK_POLICY_METRICS_FROM")
    )
    """Who else may read /progress and /metrics (the operator's pods, Prometheus): NetworkPolicyPeers, as the
    chart renders them; none: only the job's own pods (an operator outside the cluster, the local stack)."""
