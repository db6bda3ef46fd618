"""The EvalJob's plan for the shared reconcile (reconcile.py): wait for the referenced FineTuneJob (or take
the model URI), then an Indexed Job of `resources.nodes` evaluator pods (shards); it reports the model
scored, the results and the verdict."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from pydantic import ValidationError

from kubetune_operator.api import EvalJobSpec, EvalJobStatus, EvalModelSource, EvalResults
from kubetune_operator.controller import reasons
from kubetune_operator.controller.attempts import AttemptOutcome, Workload
from kubetune_operator.controller.builders import (
    Owner,
    build_config_map,
    build_evaluator_job,
    build_network_policy,
)
from kubetune_operator.controller.eval_progress import finished_progress, live_eval_progress
from kubetune_operator.controller.kube import Kube
from kubetune_operator.controller.names import KIND_EVAL, KIND_FINETUNE
from kubetune_operator.controller.reconcile import Attempts, KindPlan
from kubetune_operator.controller.settings import OperatorSettings
from kubetune_operator.controller.status import Transition


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
    recorded = str(output["digest"]) if output.get("digest") else None
    pinned = spec.model.digest
    if pinned and recorded and pinned != recorded:
        message = (
            f"spec.model.digest {pinned} is not the digest FineTuneJob {ref} recorded for its output "
            f"({recorded}); nothing to evaluate"
        )
        return None, None, Transition("Failed", reasons.DIGEST_MISMATCH, message)
    return str(uri), pinned or recorded, None


def report_result(status: EvalJobStatus, result: dict[str, Any] | None) -> None:
    """results/verdict/verdictReasons/reportUri from the evaluator's JSON summary (unknown keys ignored)."""
    if not result:
        return
    if isinstance(result.get("results"), dict):
        # A summary the operator cannot read leaves the scores out, not the verdict.
        with suppress(ValidationError):
            status.results = EvalResults.model_validate(result["results"])
    if result.get("verdict") in ("Passed", "Failed"):
        status.verdict = result["verdict"]
    if isinstance(result.get("verdictReasons"), list):
        status.verdict_reasons = [str(item) for item in result["verdictReasons"]]
    if isinstance(result.get("reportUri"), str):
        status.report_uri = result["reportUri"]


def _prepare(
    kube: Kube, owner: Owner, spec: EvalJobSpec, previous: EvalJobStatus, settings: OperatorSettings
) -> Attempts[EvalJobStatus] | Transition:
    # Once resolved, the model stays the one recorded in status (the FineTuneJob may change or go away).
    model_uri, model_digest = previous.model_uri, previous.model_digest
    if not model_uri:
        model_uri, model_digest, blocked = resolve_model(kube, owner.namespace, spec)
        if blocked is not None:
            return blocked
    resolved = spec.model_copy(update={"model": EvalModelSource(uri=model_uri, digest=model_digest)})

    def report(status: EvalJobStatus, outcome: AttemptOutcome) -> None:
        status.model_uri = model_uri
        if model_digest:
            status.model_digest = model_digest
        state = outcome.state
        if state is not None and outcome.transition.phase == "Running" and state.rank0_ip:
            # Samples done over every shard, from rank 0 (a poll that fails keeps the last progress).
            live = live_eval_progress(
                state.rank0_ip, settings.progress_port, settings.progress_timeout_seconds
            )
            if live is not None:
                status.progress = live
        if state is not None and outcome.transition.phase == "Succeeded":
            report_result(status, state.result)
            status.progress = finished_progress(status.progress)

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
    return Attempts(workload, report)


EVALJOB = KindPlan(
    kind=KIND_EVAL,
    spec_model=EvalJobSpec,
    status_model=EvalJobStatus,
    pods=lambda spec: spec.resources.nodes,
    default_image=lambda settings: settings.evaluator_image,
    prepare=_prepare,
)
