"""One reconcile of an EvalJob: wait for the referenced FineTuneJob, run the evaluator, publish results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from kubetune_operator.api import EvalJobSpec, EvalModelSource, EvalProgress, EvalResults
from kubetune_operator.api.manifest import format_validation_error
from kubetune_operator.controller import reasons
from kubetune_operator.controller.attempts import Workload, run_attempts
from kubetune_operator.controller.builders import (
    build_config_map,
    build_evaluator_job,
    build_network_policy,
    owner_from_body,
)
from kubetune_operator.controller.eval_progress import finished_progress, live_eval_progress
from kubetune_operator.controller.kube import Kube
from kubetune_operator.controller.names import KIND_EVAL, KIND_FINETUNE
from kubetune_operator.controller.policies.local_paths import local_path_failure
from kubetune_operator.controller.policies.platform import policy_failure
from kubetune_operator.controller.reconciled import Reconciled, finished, rfc3339
from kubetune_operator.controller.settings import OperatorSettings
from kubetune_operator.controller.status import (
    TERMINAL_PHASES,
    Transition,
    derive_events,
    derive_status,
    waiting_status,
)


def resolve_model(
    kube: Kube, namespace: str, spec: EvalJobSpec
) -> tuple[str | None, str | None, Transition | None]:
    """(model URI, digest, None) when ready; (None, None, a Waiting/Failed transition) while it is not.

    The digest is the one the FineTuneJob recorded (its status, which only the operator writes): the
    evaluator checks the files it downloads against it, so a model changed in S3 after training is refused.
    """
    if spec.model.uri is not None:
        return spec.model.uri, spec.model.digest, None
    assert spec.model.fine_tune_job_ref is not None  # the model validator guarantees one source
    ref = spec.model.fine_tune_job_ref.name
    finetunejob = kube.get(KIND_FINETUNE, namespace, ref)
    if finetunejob is None:
        missing = f"FineTuneJob {ref} does not exist (yet)"
        return None, None, Transition("Pending", reasons.MODEL_NOT_READY, missing)
    status = finetunejob.get("status") or {}
    phase = status.get("phase")
    if phase == "Failed":
        return (
            None,
            None,
            Transition("Failed", reasons.MODEL_FAILED, f"FineTuneJob {ref} failed; nothing to evaluate"),
        )
    if phase != "Succeeded":
        return (
            None,
            None,
            Transition("Pending", reasons.MODEL_NOT_READY, f"FineTuneJob {ref} is {phase or 'Pending'}"),
        )
    output = status.get("output") or {}
    uri = output.get("uri") or finetunejob["spec"]["output"]["uri"]
    digest = output.get("digest")
    return str(uri), str(digest) if digest else None, None


def result_fields(result: dict[str, Any] | None) -> dict[str, Any]:
    """results/verdict/verdictReasons/reportUri from the evaluator's JSON summary (unknown keys ignored)."""
    if not result:
        return {}
    fields: dict[str, Any] = {}
    if isinstance(result.get("results"), dict):
        try:
            results = EvalResults.model_validate(result["results"])
        except ValidationError:
            results = None
        if results is not None:
            fields["results"] = results.model_dump(mode="json", by_alias=True)
    if result.get("verdict") in ("Passed", "Failed"):
        fields["verdict"] = result["verdict"]
    if isinstance(result.get("verdictReasons"), list):
        fields["verdictReasons"] = [str(item) for item in result["verdictReasons"]]
    if isinstance(result.get("reportUri"), str):
        fields["reportUri"] = result["reportUri"]
    return fields


def reconcile_evaljob(
    kube: Kube, body: dict[str, Any], settings: OperatorSettings, now: datetime
) -> Reconciled:
    owner = owner_from_body(KIND_EVAL, body)
    previous = dict(body.get("status") or {})
    generation = body["metadata"].get("generation")
    stamp = rfc3339(now)
    if previous.get("phase") in TERMINAL_PHASES:
        return finished(kube, owner, body, previous, now)
    try:
        spec = EvalJobSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        transition = Transition("Failed", reasons.INVALID_SPEC, format_validation_error(error))
        status = derive_status(previous, transition, children_created=False, now=stamp, generation=generation)
        return Reconciled(status, derive_events(previous, status))
    # Before waiting for the model: a job that can never run is told so at once.
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

    # Once resolved, the model stays the one recorded in status (the FineTuneJob may change or go away).
    model_uri, model_digest = previous.get("modelUri"), previous.get("modelDigest")
    if not model_uri:
        model_uri, model_digest, blocked = resolve_model(kube, owner.namespace, spec)
        if blocked is not None and blocked.phase == "Failed":
            status = derive_status(
                previous, blocked, children_created=False, now=stamp, generation=generation
            )
            return Reconciled(status, derive_events(previous, status))
        if blocked is not None:
            status = waiting_status(previous, blocked.reason, blocked.message, stamp, generation)
            return Reconciled(status, derive_events(previous, status))
    resolved = spec.model_copy(update={"model": EvalModelSource(uri=model_uri, digest=model_digest)})
    workload = Workload(
        owner=owner,
        nodes=spec.resources.nodes,
        run_policy=spec.run_policy,
        credentials_secret=spec.storage.credentials_secret,
        children=lambda attempt: [
            build_config_map(owner, resolved),
            # No rendezvous (shards meet in S3): the policy only closes /metrics to all but the scrapers.
            *([build_network_policy(owner, settings)] if settings.network_policy else []),
            build_evaluator_job(owner, resolved, attempt, settings),
        ],
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
    status["modelUri"] = model_uri
    if model_digest:
        status["modelDigest"] = model_digest
    state = outcome.state
    if state is not None and outcome.transition.phase == "Running" and state.rank0_ip:
        # Samples done over every shard, from rank 0 (a poll that fails keeps the last progress).
        live = live_eval_progress(state.rank0_ip, settings.progress_port, settings.progress_timeout_seconds)
        if live is not None:
            status["progress"] = live.model_dump(mode="json", by_alias=True, exclude_none=True)
    if state is not None and outcome.transition.phase == "Succeeded":
        status.update(result_fields(state.result))
        if isinstance(status.get("progress"), dict):
            last = EvalProgress.model_validate(status["progress"])
            done = finished_progress(last)
            if done is not None:
                status["progress"] = done.model_dump(mode="json", by_alias=True, exclude_none=True)
    return Reconciled(status, derive_events(previous, status))
