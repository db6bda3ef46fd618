"""`kubetune operator`: run the Kopf operator for FineTuneJob and EvalJob."""

from __future__ import annotations

import math
import os
import random
from typing import Annotated

import typer
from pydantic import ValidationError

from kubetune_operator.api.logs import configure_logging, in_pod
from kubetune_operator.controller.policies.platform import PlatformPolicy
from kubetune_operator.controller.settings import DEFAULTS, OperatorSettings, parse_peers


def operator_command(
    *,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Watch only these namespaces (repeatable); default: all."),
    ] = None,
    trainer_image: Annotated[
        str,
        typer.Option(
            envvar="KUBETUNE_TRAINER_IMAGE",
            help="Image of trainer pods whose FineTuneJob sets no spec.image.",
        ),
    ] = DEFAULTS.trainer_image,
    evaluator_image: Annotated[
        str,
        typer.Option(
            envvar="KUBETUNE_EVALUATOR_IMAGE",
            help="Image of evaluator pods whose EvalJob sets no spec.image.",
        ),
    ] = DEFAULTS.evaluator_image,
    trainer_module: Annotated[
        str,
        typer.Option(
            envvar="KUBETUNE_TRAINER_MODULE", help="Python module trainer pods run after accelerate."
        ),
    ] = DEFAULTS.trainer_module,
    evaluator_module: Annotated[
        str, typer.Option(envvar="KUBETUNE_EVALUATOR_MODULE", help="Python module evaluator pods run.")
    ] = DEFAULTS.evaluator_module,
    launcher: Annotated[
        str,
        typer.Option(
            envvar="KUBETUNE_LAUNCHER",
            help="accelerate: `accelerate launch ... -m MODULE`; python: `python -m MODULE` "
            "(one process per pod).",
        ),
    ] = DEFAULTS.launcher,
    python_executable: Annotated[
        str, typer.Option(envvar="KUBETUNE_POD_PYTHON", help="The pods' Python (launcher python).")
    ] = DEFAULTS.python_executable,
    accelerate_executable: Annotated[
        str, typer.Option(envvar="KUBETUNE_POD_ACCELERATE", help="The pods' accelerate executable.")
    ] = DEFAULTS.accelerate_executable,
    progress_port: Annotated[
        int, typer.Option(envvar="KUBETUNE_PROGRESS_PORT", help="Port of rank 0's /progress and /metrics.")
    ] = DEFAULTS.progress_port,
    reconcile_interval: Annotated[
        float, typer.Option(envvar="KUBETUNE_RECONCILE_INTERVAL", help="Seconds between polls of a live job.")
    ] = DEFAULTS.reconcile_interval_seconds,
    pending_timeout: Annotated[
        float,
        typer.Option(
            envvar="KUBETUNE_PENDING_TIMEOUT",
            help="Seconds pods may stay unscheduled when the job sets no runPolicy.pendingTimeoutSeconds.",
        ),
    ] = DEFAULTS.pending_timeout_seconds,
    restart_backoff: Annotated[
        float,
        typer.Option(
            envvar="KUBETUNE_RESTART_BACKOFF",
            help="Seconds before the first gang restart after a worker failure; doubled after each "
            "restart, up to 300 (disruptions restart at once); 0: no back-off.",
        ),
    ] = DEFAULTS.restart_backoff_seconds,
    pod_storage_retry_seconds: Annotated[
        float,
        typer.Option(
            envvar="KUBETUNE_POD_STORAGE_RETRY_SECONDS",
            help="S3 retry window of the trainer/evaluator pods (their KUBETUNE_STORAGE_RETRY_SECONDS): "
            "seconds each S3 call is retried while S3 does not answer before the job fails with "
            "StorageUnreachable; 0: no retries beyond botocore's three attempts.",
        ),
    ] = DEFAULTS.pod_storage_retry_seconds,
    policy: Annotated[
        str,
        typer.Option(
            envvar="KUBETUNE_POLICY",
            help="Platform policy as JSON (the chart's `policy` values): allowedImageRepositories, "
            "allowedServiceAccounts, allowedPriorityClasses, allowedAnnotationKeys, maxGpusPerJob; "
            "empty: everything allowed.",
        ),
    ] = "",
    network_policy: Annotated[
        bool,
        typer.Option(
            envvar="KUBETUNE_NETWORK_POLICY",
            help="One NetworkPolicy per job: ingress only from its own pods and, to the progress port, "
            "from --network-policy-metrics-from.",
        ),
    ] = DEFAULTS.network_policy,
    network_policy_metrics_from: Annotated[
        str,
        typer.Option(
            envvar="KUBETUNE_NETWORK_POLICY_METRICS_FROM",
            help="JSON list of NetworkPolicyPeers that may read the pods' progress port (the chart's "
            "networkPolicy.metricsFrom); empty: only the job's own pods.",
        ),
    ] = "",
    memory_preflight_endpoint: Annotated[
        str | None,
        typer.Option(
            envvar="KUBETUNE_MEMORY_PREFLIGHT_ENDPOINT",
            help="S3 endpoint the operator reads models' config.json from (its own AWS_* credentials) to "
            "fail jobs with resources.gpuMemory that cannot fit before creating pods; only jobs using this "
            "storage.endpoint are checked ('aws': AWS S3). Unset: no operator preflight.",
        ),
    ] = None,
    metrics_port: Annotated[
        int, typer.Option(envvar="KUBETUNE_OPERATOR_METRICS_PORT", help="Port of /metrics; 0 disables it.")
    ] = 8080,
    health_port: Annotated[
        int, typer.Option(envvar="KUBETUNE_OPERATOR_HEALTH_PORT", help="Port of /healthz (Kopf liveness).")
    ] = 8081,
    peering: Annotated[
        str | None,
        typer.Option(
            envvar="KUBETUNE_PEERING",
            help="Kopf peering name for HA (needs the ClusterKopfPeering CRD, see docs/operator.md); "
            "unset: standalone.",
        ),
    ] = None,
    peering_priority: Annotated[
        int | None,
        typer.Option(
            envvar="KUBETUNE_PEERING_PRIORITY",
            help="Kopf peering priority: the live peer with the highest one works, the others stand by; "
            "default random, because equal priorities pause every replica of a Deployment.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Run the operator: FineTuneJob/EvalJob -> ConfigMap, Service, Indexed Job; status and events."""
    if launcher not in ("accelerate", "python"):
        raise typer.BadParameter("must be accelerate or python", param_hint="--launcher")
    if not 0 <= pod_storage_retry_seconds < math.inf:  # NaN and inf too: the pods would fail or never stop
        raise typer.BadParameter("must be a finite number >= 0", param_hint="--pod-storage-retry-seconds")
    if not 0 <= restart_backoff < math.inf:
        raise typer.BadParameter("must be a finite number >= 0", param_hint="--restart-backoff")
    try:
        platform_policy = PlatformPolicy.from_json(policy)  # a typo must stop the operator, not allow all
    except ValidationError as error:
        raise typer.BadParameter(str(error), param_hint="--policy") from error
    try:
        metrics_from = parse_peers(network_policy_metrics_from)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--network-policy-metrics-from") from error
    settings = OperatorSettings(
        trainer_image=trainer_image,
        evaluator_image=evaluator_image,
        trainer_module=trainer_module,
        evaluator_module=evaluator_module,
        launcher="python" if launcher == "python" else "accelerate",
        python_executable=python_executable,
        accelerate_executable=accelerate_executable,
        progress_port=progress_port,
        reconcile_interval_seconds=reconcile_interval,
        pending_timeout_seconds=pending_timeout,
        restart_backoff_seconds=restart_backoff,
        pod_storage_retry_seconds=pod_storage_retry_seconds,
        policy=platform_policy,
        network_policy=network_policy,
        network_policy_metrics_from=metrics_from,
        memory_preflight_endpoint=memory_preflight_endpoint or None,
    )
    run_operator(
        settings,
        namespaces=namespace or [],
        metrics_port=metrics_port,
        health_port=health_port,
        peering=peering,
        peering_priority=peering_priority,
        verbose=verbose,
    )


def run_operator(
    settings: OperatorSettings,
    *,
    namespaces: list[str],
    metrics_port: int,
    health_port: int,
    peering: str | None,
    peering_priority: int | None,
    verbose: bool,
) -> None:
    """Kopf with the operator's own registry and `memo`: the settings reach the handlers only that way."""
    # deferred: kopf and the Kubernetes client cost a second at import, which every other verb skips.
    import kopf  # noqa: PLC0415

    from kubetune_operator.controller.handlers import build_registry  # noqa: PLC0415
    from kubetune_operator.controller.metrics import serve_metrics  # noqa: PLC0415

    # Exact namespaces (the Helm chart's namespaced mode) need no cluster-wide discovery.
    exact = bool(namespaces) and not any(char in name for name in namespaces for char in "*?[!")
    registry = build_registry(settings, scan_cluster=not exact)
    # The pod's own IP when the Deployment passes it (as trainer pods do): replicas never share a port,
    # even where pods share one network namespace (the local stack's node agent).
    listen_host = os.environ.get("POD_IP") or "0.0.0.0"
    serve_metrics(metrics_port, listen_host)
    # The shared setup instead of kopf.configure: JSON lines in the operator's pod, text with times locally.
    configure_logging(json_lines=in_pod(), verbose=verbose, detailed=True)
    kopf.run(
        registry=registry,
        memo=kopf.Memo(settings=settings),
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=peering is None,
        # A peering name makes Kopf require the peering CRDs even when standalone: pass it only for HA.
        peering_name=peering,
        priority=peering_priority if peering_priority is not None else random.randint(1, 2**31 - 1),
        liveness_endpoint=f"http://{listen_host}:{health_port}/healthz",
    )
