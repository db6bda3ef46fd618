"""`kubetune operator`: run the Kopf operator for FineTuneJob and EvalJob."""

from __future__ import annotations

import os
import random
from typing import Annotated

import typer


def operator_command(
    *,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Watch only these namespaces (repeatable); default: all."),
    ] = None,
    trainer_module: Annotated[
        str,
        typer.Option(
            envvar="KUBETUNE_TRAINER_MODULE", help="Python module trainer pods run after accelerate."
        ),
    ] = "kubetune_trainer",
    evaluator_module: Annotated[
        str, typer.Option(envvar="KUBETUNE_EVALUATOR_MODULE", help="Python module evaluator pods run.")
    ] = "kubetune_evaluator",
    launcher: Annotated[
        str,
        typer.Option(
            envvar="KUBETUNE_LAUNCHER",
            help="accelerate: `accelerate launch ... -m MODULE`; python: `python -m MODULE` "
            "(one process per pod).",
        ),
    ] = "accelerate",
    reconcile_interval: Annotated[
        float, typer.Option(envvar="KUBETUNE_RECONCILE_INTERVAL", help="Seconds between polls of a live job.")
    ] = 10.0,
    pending_timeout: Annotated[
        float,
        typer.Option(
            envvar="KUBETUNE_PENDING_TIMEOUT",
            help="Seconds pods may stay unscheduled when the job sets no runPolicy.pendingTimeoutSeconds.",
        ),
    ] = 300.0,
    policy: Annotated[
        str,
        typer.Option(
            envvar="KUBETUNE_POLICY",
            help="Platform policy as JSON (the chart's `policy` values): allowedImageRepositories, "
            "allowedServiceAccounts, allowedPriorityClasses, allowedAnnotationKeys, maxGpusPerJob; "
            "empty: everything allowed.",
        ),
    ] = "",
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
    from pydantic import ValidationError

    from kubetune_operator.controller.policies.platform import PlatformPolicy

    try:
        PlatformPolicy.from_json(policy)  # a typo must stop the operator, not silently allow everything
    except ValidationError as error:
        raise typer.BadParameter(str(error), param_hint="--policy") from error
    # The handlers read their settings (timer interval included) from the environment at import.
    os.environ.update(
        {
            "KUBETUNE_TRAINER_MODULE": trainer_module,
            "KUBETUNE_EVALUATOR_MODULE": evaluator_module,
            "KUBETUNE_LAUNCHER": launcher,
            "KUBETUNE_RECONCILE_INTERVAL": str(reconcile_interval),
            "KUBETUNE_PENDING_TIMEOUT": str(pending_timeout),
            "KUBETUNE_POLICY": policy,
        }
    )
    import kopf

    from kubetune_operator.controller import handlers
    from kubetune_operator.controller.metrics import serve_metrics

    del handlers  # imported for its registrations
    if namespace and not any(char in name for name in namespace for char in "*?[!"):
        # Exact namespaces only (the Helm chart's namespaced mode): nothing to discover cluster-wide, and
        # least-privilege Roles forbid listing namespaces and CRDs, which Kopf would retry for a minute.
        @kopf.on.startup()
        def _no_cluster_scans(settings: kopf.OperatorSettings, **_: object) -> None:
            settings.scanning.disabled = True

    # The pod's own IP when the Deployment passes it (as trainer pods do): replicas never share a port,
    # even where pods share one network namespace (the local stack's node agent).
    listen_host = os.environ.get("POD_IP") or "0.0.0.0"
    serve_metrics(metrics_port, listen_host)
    kopf.configure(verbose=verbose)
    kopf.run(
        clusterwide=not namespace,
        namespaces=namespace or [],
        standalone=peering is None,
        # A peering name makes Kopf require the peering CRDs even when standalone: pass it only for HA.
        peering_name=peering,
        priority=peering_priority if peering_priority is not None else random.randint(1, 2**31 - 1),
        liveness_endpoint=f"http://{listen_host}:{health_port}/healthz",
    )
