"""One reconcile of a FineTuneJob or an EvalJob: the same steps for both, each kind's differences in its plan.

1. A finished job only waits for its TTL (reconciled.finished).
2. The spec is parsed with the kind's model: an invalid one fails the job (InvalidSpec).
3. The platform policy and the local-path rule may refuse it, before any child exists.
4. The kind's plan prepares the attempts (an EvalJob first resolves its model, and may wait or fail).
5. The shared lifecycle runs (attempts.run_attempts); the status is derived (status.py) and the kind's
   plan reports its own fields.

The status is the kind's pydantic status model from start to end: the stored one is parsed once, every
step reads and writes its attributes (so the status schema is type-checked) and it is dumped once, as
written (status.dump_status).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from kubetune_operator.api import EvalJobSpec, FineTuneJobSpec
from kubetune_operator.api.manifest import format_validation_error
from kubetune_operator.api.timestamps import rfc3339
from kubetune_operator.controller import reasons
from kubetune_operator.controller.attempts import AttemptOutcome, Workload, run_attempts
from kubetune_operator.controller.builders import Owner, owner_from_body
from kubetune_operator.controller.kube import Kube
from kubetune_operator.controller.policies.local_paths import local_path_failure
from kubetune_operator.controller.policies.platform import policy_failure
from kubetune_operator.controller.reconciled import Reconciled, finished
from kubetune_operator.controller.settings import OperatorSettings
from kubetune_operator.controller.status import (
    TERMINAL_PHASES,
    StatusT,
    Transition,
    derive_events,
    derive_status,
    waiting_status,
)

SpecT = TypeVar("SpecT", FineTuneJobSpec, EvalJobSpec)


@dataclass(frozen=True)
class Attempts(Generic[StatusT]):
    """What a kind runs once its spec is accepted, and how it reports the outcome in its status."""

    workload: Workload
    report: Callable[[StatusT, AttemptOutcome], None]


@dataclass(frozen=True)
class KindPlan(Generic[SpecT, StatusT]):
    """Everything one kind adds to the shared reconcile."""

    kind: str
    spec_model: type[SpecT]
    status_model: type[StatusT]
    pods: Callable[[SpecT], int]
    """How many pods the job runs (for the platform policy's GPU limit)."""
    default_image: Callable[[OperatorSettings], str]
    """The image of the kind's pods when spec.image is unset."""
    prepare: Callable[[Kube, Owner, SpecT, StatusT, OperatorSettings], Attempts[StatusT] | Transition]
    """The attempts to run, or why not yet: a Failed transition ends the job, any other waits (Pending,
    with a Waiting condition)."""


def reconcile(
    plan: KindPlan[SpecT, StatusT],
    kube: Kube,
    body: dict[str, Any],
    settings: OperatorSettings,
    now: datetime,
) -> Reconciled:
    owner = owner_from_body(plan.kind, body)
    # Unknown fields are dropped (the status models ignore them): only the model's fields are written.
    previous = plan.status_model.model_validate(body.get("status") or {})
    generation = body["metadata"].get("generation")
    stamp = rfc3339(now)

    def ended(transition: Transition) -> Reconciled:
        """Failed (or waiting) before any child: no attempt ran."""
        if transition.phase == "Failed":
            status = derive_status(
                previous, transition, children_created=False, now=stamp, generation=generation
            )
        else:
            status = waiting_status(previous, transition.reason, transition.message, stamp, generation)
        return Reconciled(previous, status, derive_events(previous, status))

    if previous.phase in TERMINAL_PHASES:
        return finished(kube, owner, body, previous, now)
    raw_spec = body.get("spec") or {}
    try:
        spec = plan.spec_model.model_validate(raw_spec)
    except ValidationError as error:
        return ended(Transition("Failed", reasons.INVALID_SPEC, format_validation_error(error)))
    # Before anything else (an EvalJob's wait for its model included): a job that can never run is told so.
    refused = policy_failure(
        settings.policy,
        previous,
        spec.image or plan.default_image(settings),
        spec.pod_template,
        pods=plan.pods(spec),
        gpus_per_pod=spec.resources.gpus_per_node,
    ) or local_path_failure(previous, raw_spec)
    if refused is not None:
        return ended(refused)
    prepared = plan.prepare(kube, owner, spec, previous, settings)
    if isinstance(prepared, Transition):
        return ended(prepared)

    outcome = run_attempts(kube, prepared.workload, previous, settings, now)
    status = derive_status(
        previous,
        outcome.transition,
        children_created=outcome.children_created,
        now=stamp,
        generation=generation,
    )
    status.restarts = outcome.attempt
    prepared.report(status, outcome)
    return Reconciled(previous, status, derive_events(previous, status))
