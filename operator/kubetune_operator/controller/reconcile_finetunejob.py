"""One reconcile of a FineTuneJob: children, lifecycle, live progress, output."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from kubetune_operator.api import FineTuneJobSpec
from kubetune_operator.api.manifest import format_validation_error
from kubetune_operator.controller import reasons
from kubetune_operator.controller.attempts import Workload, run_attempts
from kubetune_operator.controller.builders import (
    Owner,
    build_config_map,
    build_headless_service,
    build_network_policy,
    build_worker_job,
    owner_from_body,
)
from kubetune_operator.controller.kube import Kube
from kubetune_operator.controller.names import KIND_FINETUNE
from kubetune_operator.controller.policies.local_paths import local_path_failure
from kubetune_operator.controller.policies.platform import policy_failure
from kubetune_operator.controller.progress import checkpoint_status, fetch_progress, progress_status
from kubetune_operator.controller.reconciled import Reconciled, finished, rfc3339
from kubetune_operator.controller.settings import OperatorSettings
from kubetune_operator.controller.status import TERMINAL_PHASES, Transition, derive_events, derive_status


def _children(
    owner: Owner, spec: FineTuneJobSpec, settings: OperatorSettings, attempt: int
) -> list[dict[str, Any]]:
    children = [build_config_map(owner, spec), build_headless_service(owner)]
    if settings.network_policy:
        # Before the Job, so that no pod runs unprotected.
        children.append(build_network_policy(owner, settings))
    return [*children, build_worker_job(owner, spec, attempt, settings)]


def _output(spec: FineTuneJobSpec, result: dict[str, Any] | None) -> dict[str, Any]:
    """The trainer's reported output (uri, digest); the spec's output URI when it reported nothing."""
    reported = (result or {}).get("output")
    output = {"uri": spec.output.uri}
    if isinstance(reported, dict):
        if isinstance(reported.get("uri"), str):
            output["uri"] = reported["uri"]
        if isinstance(reported.get("digest"), str):
            output["digest"] = reported["digest"]
    return output


def reconcile_finetunejob(
    kube: Kube, body: dict[str, Any], settings: OperatorSettings, now: datetime
) -> Reconciled:
    owner = owner_from_body(KIND_FINETUNE, body)
    previous = dict(body.get("status") or {})
    generation = body["metadata"].get("generation")
    stamp = rfc3339(now)
    if previous.get("phase") in TERMINAL_PHASES:
        return finished(kube, owner, body, previous, now)
    try:
        spec = FineTuneJobSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        transition = Transition("Failed", reasons.INVALID_SPEC, format_validation_error(error))
        status = derive_status(previous, transition, children_created=False, now=stamp, generation=generation)
        return Reconciled(status, derive_events(previous, status))
    refused = policy_failure(
        settings.policy,
        previous,
        spec.image,
        spec.pod_template,
        pods=spec.resources.nodes,
        gpus_per_pod=spec.resources.gpus_per_node,
    ) or local_path_failure(previous, body.get("spec") or {})
    if refused is not None:
        status = derive_status(previous, refused, children_created=False, now=stamp, generation=generation)
        return Reconciled(status, derive_events(previous, status))

    workload = Workload(
        owner=owner,
        nodes=spec.resources.nodes,
        run_policy=spec.run_policy,
        credentials_secret=spec.storage.credentials_secret,
        children=lambda attempt: _children(owner, spec, settings, attempt),
    )
    outcome = run_attempts(kube, workload, previous, settings, now)
    status = derive_status(
        previous,
        outcome.transition,
        children_created=outcome.children_created,
        now=stamp,
        generation=generation,
    )
    status["restarts"] = outcome.attempt
    state = outcome.state
    if state is not None and outcome.transition.phase == "Running" and state.rank0_ip:
        payload = fetch_progress(state.rank0_ip, settings.progress_port, settings.progress_timeout_seconds)
        if payload is not None:
            progress = progress_status(payload)
            if progress is not None:
                status["progress"] = progress
            checkpoint = checkpoint_status(payload)
            if checkpoint is not None:
                status["lastCheckpoint"] = checkpoint
    if state is not None and outcome.transition.phase == "Succeeded":
        result = state.result or {}
        status["output"] = _output(spec, result)
        # The final report travels in the termination message: the pods may finish between two polls of
        # /progress, and a finished job must show its last step, 100 % and its final losses.
        final = result.get("progress")
        progress = progress_status(final) if isinstance(final, dict) else None
        if progress is not None:
            status["progress"] = progress
        checkpoint = checkpoint_status(result)
        if checkpoint is not None:
            status["lastCheckpoint"] = checkpoint
    return Reconciled(status, derive_events(previous, status))
