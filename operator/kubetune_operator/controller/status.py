"""Pure status derivation: (previous status, what was observed/decided) -> the next status and its Events.

The statuses are the kind's pydantic status model (a `JobStatus`), read and written as attributes so that
mypy checks every field name; `dump_status` gives the wire shape the operator patches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from kubetune_operator.api.common import Condition, JobStatus, Phase
from kubetune_operator.controller import reasons
from kubetune_operator.controller.conditions import find_condition, set_condition

StatusT = TypeVar("StatusT", bound=JobStatus)

TERMINAL_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True)
class Transition:
    """What the reconciler concluded: the phase to report and why."""

    phase: Phase
    reason: str
    message: str


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def derive_conditions(
    conditions: list[Condition],
    transition: Transition,
    *,
    children_created: bool,
    now: str,
    generation: int | None,
) -> list[Condition]:
    """The standard conditions for a phase (metav1 rules; `Ready` is the GitOps health signal)."""
    phase, reason, message = transition.phase, transition.reason, transition.message

    def put(items: list[Condition], type_: str, value: bool, why: str, text: str) -> list[Condition]:
        return set_condition(items, type_, value, reason=why, message=text, now=now, generation=generation)

    def clear_if_set(items: list[Condition], type_: str, why: str) -> list[Condition]:
        # Conditions that never applied are left out instead of listed as False.
        if find_condition(items, type_) is None:
            return items
        return put(items, type_, False, why, message)

    result = list(conditions)
    if children_created:
        result = put(
            result, reasons.CREATED, True, reasons.CHILDREN_CREATED, "ConfigMap, Service and Job created"
        )
    elif phase == "Failed":
        result = put(result, reasons.CREATED, False, reason, message)
    result = put(result, reasons.RUNNING, phase == "Running", reason, message)
    if phase == "Restarting":
        result = put(result, reasons.RESTARTING, True, reason, message)
    else:
        result = clear_if_set(result, reasons.RESTARTING, reason)
    if phase == "Suspended":
        result = put(result, reasons.SUSPENDED, True, reason, message)
    else:
        result = clear_if_set(result, reasons.SUSPENDED, reasons.RESUMED)
    if phase == "Succeeded":
        result = put(result, reasons.SUCCEEDED, True, reason, message)
    if phase == "Failed":
        result = put(result, reasons.FAILED, True, reason, message)
    result = clear_if_set(result, reasons.WAITING, reason)
    ready = phase in ("Running", "Succeeded")
    result = put(result, reasons.READY, ready, reason, message)
    return kstatus_conditions(result, transition, now=now, generation=generation)


RECONCILING_PHASES: frozenset[str] = frozenset({"Pending", "Restarting"})
"""Phases in which the operator is still bringing the spec about (children, pods, a new gang). Running,
Suspended and Succeeded are where the spec asks the job to be (kstatus treats a started batch Job as
Current too); Failed is final: nothing the operator does will make progress."""


def kstatus_conditions(
    conditions: list[Condition],
    transition: Transition,
    *,
    now: str,
    generation: int | None,
) -> list[Condition]:
    """`Reconciling` (always present) and `Stalled` (present once it was True), beside `Ready`.

    Every Failed is Stalled: the operator retries what a gang restart can fix while the phase stays
    Running/Restarting, so a Failed job has a reason no retry will change (InvalidSpec, PendingTimeout,
    RestartsExhausted, ...); a new spec or a re-created job is needed."""
    phase, reason, message = transition.phase, transition.reason, transition.message
    reconciling = phase in RECONCILING_PHASES
    result = set_condition(
        conditions,
        reasons.RECONCILING,
        reconciling,
        reason=reason,
        message=message,
        now=now,
        generation=generation,
    )
    if phase == "Failed" or find_condition(result, reasons.STALLED) is not None:
        result = set_condition(
            result,
            reasons.STALLED,
            phase == "Failed",
            reason=reason,
            message=message,
            now=now,
            generation=generation,
        )
    return result


def derive_status(
    previous: StatusT,
    transition: Transition,
    *,
    children_created: bool,
    now: str,
    generation: int | None,
) -> StatusT:
    """Phase, conditions, observedGeneration, startTime and completionTime; other fields carried over."""
    status = previous.model_copy(deep=True)
    status.phase = transition.phase
    status.observed_generation = generation
    status.conditions = derive_conditions(
        previous.conditions,
        transition,
        children_created=children_created,
        now=now,
        generation=generation,
    )
    if transition.phase == "Running" and not status.start_time:
        status.start_time = now
    if transition.phase in TERMINAL_PHASES and not status.completion_time:
        status.completion_time = now
    return status


def observed_finished(status: StatusT, generation: int | None) -> StatusT:
    """A finished job's status for a new generation (only mutable fields such as the TTL can have changed,
    and they change no outcome): observedGeneration advanced on the status and its conditions, so kstatus
    reads it Current/Failed again instead of InProgress for ever."""
    if generation is None or status.observed_generation == generation:
        return status
    observed = status.model_copy(deep=True)
    observed.observed_generation = generation
    observed.conditions = [
        c.model_copy(update={"observed_generation": generation}) for c in status.conditions
    ]
    return observed


def waiting_status(previous: StatusT, reason: str, message: str, now: str, generation: int | None) -> StatusT:
    """EvalJob waiting for its FineTuneJob: Pending with a `Waiting` condition."""
    status = previous.model_copy(deep=True)
    status.phase = "Pending"
    status.observed_generation = generation
    conditions = set_condition(
        previous.conditions,
        reasons.WAITING,
        True,
        reason=reason,
        message=message,
        now=now,
        generation=generation,
    )
    conditions = set_condition(
        conditions, reasons.READY, False, reason=reason, message=message, now=now, generation=generation
    )
    pending = Transition("Pending", reason, message)  # waiting for a dependency: still reconciling
    status.conditions = kstatus_conditions(conditions, pending, now=now, generation=generation)
    return status


def dump_status(status: JobStatus) -> dict[str, Any]:
    """The status as written: camelCase, the fields it holds (read from the cluster or set since), no null."""
    return status.model_dump(mode="json", by_alias=True, include=status.model_fields_set, exclude_none=True)


_WARNING_PHASES = frozenset({"Failed", "Restarting"})


def derive_events(previous: JobStatus, current: JobStatus) -> list[Event]:
    """One Event per phase change (and per restart), so `kubectl describe` tells the story."""
    events: list[Event] = []
    old_phase, new_phase = previous.phase, current.phase
    restarted = current.restarts > previous.restarts
    if old_phase == new_phase and not restarted:
        old_waiting = find_condition(previous.conditions, reasons.WAITING)
        new_waiting = find_condition(current.conditions, reasons.WAITING)
        if (
            new_waiting is not None
            and new_waiting.status == "True"
            and (old_waiting is None or old_waiting.status != "True")
        ):
            events.append(Event("Normal", new_waiting.reason, new_waiting.message))
        return events
    ready = find_condition(current.conditions, reasons.READY)
    reason = str((ready.reason if ready is not None else "") or new_phase)
    message = f"{old_phase or 'New'} -> {new_phase}: {ready.message if ready is not None else ''}".strip()
    kind: Literal["Normal", "Warning"] = "Warning" if new_phase in _WARNING_PHASES else "Normal"
    events.append(Event(kind, reason, message))
    return events
