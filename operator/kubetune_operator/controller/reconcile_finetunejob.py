"""The FineTuneJob's plan for the shared reconcile (reconcile.py): its children (ConfigMap, headless
Service, NetworkPolicy, an Indexed Job of `resources.nodes` workers) and what it reports: live progress
from rank 0, the last checkpoint and the exported model. Before the first children, the memory preflight
(memory_preflight.py) may fail a job that cannot fit its GPUs."""

from __future__ import annotations

from typing import Any

from kubetune_operator.api import FineTuneJobSpec, FineTuneJobStatus, OutputRef
from kubetune_operator.controller import reasons
from kubetune_operator.controller.attempts import AttemptOutcome, Workload
from kubetune_operator.controller.builders import (
    Owner,
    build_config_map,
    build_headless_service,
    build_network_policy,
    build_worker_job,
)
from kubetune_operator.controller.conditions import is_true
from kubetune_operator.controller.kube import Kube
from kubetune_operator.controller.memory_preflight import memory_preflight
from kubetune_operator.controller.names import KIND_FINETUNE
from kubetune_operator.controller.progress import checkpoint_status, fetch_progress, progress_status
from kubetune_operator.controller.reconcile import Attempts, KindPlan
from kubetune_operator.controller.settings import OperatorSettings
from kubetune_operator.controller.status import Transition


def _children(
    owner: Owner, spec: FineTuneJobSpec, settings: OperatorSettings, attempt: int
) -> list[dict[str, Any]]:
    children = [build_config_map(owner, spec), build_headless_service(owner)]
    if settings.network_policy:
        # Before the Job, so that no pod runs unprotected.
        children.append(build_network_policy(owner, settings))
    return [*children, build_worker_job(owner, spec, attempt, settings)]


def _output(spec: FineTuneJobSpec, result: dict[str, Any] | None) -> OutputRef:
    """The trainer's reported output (uri, digest); the spec's output URI when it reported nothing."""
    reported = (result or {}).get("output")
    output = OutputRef(uri=spec.output.uri)
    if isinstance(reported, dict):
        if isinstance(reported.get("uri"), str):
            output.uri = reported["uri"]
        if isinstance(reported.get("digest"), str):
            output.digest = reported["digest"]
    return output


def _report_progress(status: FineTuneJobStatus, progress: object, checkpoint_from: dict[str, Any]) -> None:
    """Progress and last checkpoint from what the trainer reported; a report without them keeps the last."""
    reported = progress_status(progress) if isinstance(progress, dict) else None
    if reported is not None:
        status.progress = reported
    checkpoint = checkpoint_status(checkpoint_from)
    if checkpoint is not None:
        status.last_checkpoint = checkpoint


def _prepare(
    kube: Kube, owner: Owner, spec: FineTuneJobSpec, previous: FineTuneJobStatus, settings: OperatorSettings
) -> Attempts[FineTuneJobStatus] | Transition:
    if not is_true(previous.conditions, reasons.CREATED):
        # Only before the first children: a running job is never failed for an estimate.
        where = f"{owner.namespace}/{owner.name}"
        refused = memory_preflight(spec, settings.memory_preflight_endpoint, where)
        if refused is not None:
            return refused

    def report(status: FineTuneJobStatus, outcome: AttemptOutcome) -> None:
        state = outcome.state
        if state is not None and outcome.transition.phase == "Running" and state.rank0_ip:
            payload = fetch_progress(
                state.rank0_ip, settings.progress_port, settings.progress_timeout_seconds
            )
            if payload is not None:
                _report_progress(status, payload, payload)
        if state is not None and outcome.transition.phase == "Succeeded":
            result = state.result or {}
            status.output = _output(spec, result)
            # The final report travels in the termination message: the pods may finish between two polls
            # of /progress, and a finished job must show its last step, 100 % and its final losses.
            _report_progress(status, result.get("progress"), result)

    workload = Workload(
        owner=owner,
        nodes=spec.resources.nodes,
        run_policy=spec.run_policy,
        credentials_secret=spec.storage.credentials_secret,
        children=lambda attempt: _children(owner, spec, settings, attempt),
    )
    return Attempts(workload, report)


FINETUNEJOB = KindPlan(
    kind=KIND_FINETUNE,
    spec_model=FineTuneJobSpec,
    status_model=FineTuneJobStatus,
    pods=lambda spec: spec.resources.nodes,
    default_image=lambda settings: settings.trainer_image,
    prepare=_prepare,
)
