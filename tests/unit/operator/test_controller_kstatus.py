"""kstatus conditions (Reconciling, Stalled) beside Ready, from the pure status builder.

kstatus (sigs.k8s.io/cli-utils/pkg/kstatus, used by Flux, Argo CD and kpt) reads a custom resource as
Failed when Stalled is True, InProgress when Reconciling is True or observedGeneration lags the
generation, Current otherwise; `kstatus_of` below states those rules for the assertions."""

from __future__ import annotations

import pytest

from kubetune_operator.api import EvalJobStatus, FineTuneJobStatus, JobStatus
from kubetune_operator.api.common import Phase
from kubetune_operator.controller import reasons
from kubetune_operator.controller.conditions import find_condition, is_true
from kubetune_operator.controller.status import (
    Transition,
    derive_status,
    observed_finished,
    waiting_status,
)

T0, T1, T2, T3 = (f"2026-01-01T00:0{n}:00Z" for n in range(4))


def kstatus_of(status: JobStatus, generation: int) -> str:
    conditions = status.conditions
    if status.observed_generation != generation:
        return "InProgress"
    if is_true(conditions, reasons.STALLED):
        return "Failed"
    if is_true(conditions, reasons.RECONCILING):
        return "InProgress"
    return "Current"


def step(
    previous: FineTuneJobStatus, phase: Phase, reason: str, now: str, generation: int = 1
) -> FineTuneJobStatus:
    transition = Transition(phase, reason, f"{phase} because {reason}")
    return derive_status(previous, transition, children_created=True, now=now, generation=generation)


@pytest.mark.parametrize(
    ("phase", "reason", "expected"),
    [
        ("Pending", reasons.PODS_PENDING, "InProgress"),
        ("Restarting", reasons.ERROR, "InProgress"),
        ("Running", reasons.ALL_WORKERS_RUNNING, "Current"),
        ("Suspended", reasons.SUSPENDED_BY_USER, "Current"),
        ("Succeeded", reasons.COMPLETED, "Current"),
        ("Failed", reasons.PENDING_TIMEOUT, "Failed"),
        ("Failed", reasons.INVALID_SPEC, "Failed"),
    ],
)
def test_each_phase_reads_as_kstatus_expects(phase: Phase, reason: str, expected: str) -> None:
    status = step(FineTuneJobStatus(), phase, reason, T0, generation=3)
    assert kstatus_of(status, 3) == expected
    reconciling = find_condition(status.conditions, reasons.RECONCILING)
    assert reconciling is not None and reconciling.observed_generation == 3
    assert reconciling.reason == reason
    stalled = find_condition(status.conditions, reasons.STALLED)
    # Stalled is listed once it applies (metav1 style of this operator: never-applied conditions are absent).
    assert (stalled is not None) == (phase == "Failed")
    assert is_true(status.conditions, reasons.READY) == (phase in ("Running", "Succeeded"))


def test_lifecycle_flips_reconciling_and_keeps_transition_times() -> None:
    pending = step(FineTuneJobStatus(), "Pending", reasons.PODS_PENDING, T0)
    running = step(pending, "Running", reasons.ALL_WORKERS_RUNNING, T1)
    running_again = step(running, "Running", reasons.ALL_WORKERS_RUNNING, T2)
    restarting = step(running_again, "Restarting", reasons.ERROR, T2)
    failed = step(restarting, "Failed", reasons.RESTARTS_EXHAUSTED, T3)
    values = [
        find_condition(s.conditions, reasons.RECONCILING).status  # type: ignore[union-attr]
        for s in (pending, running, running_again, restarting, failed)
    ]
    assert values == ["True", "False", "False", "True", "False"]
    reconciling = find_condition(running_again.conditions, reasons.RECONCILING)
    assert reconciling is not None and reconciling.last_transition_time == T1  # unchanged: the time stays
    stalled = find_condition(failed.conditions, reasons.STALLED)
    assert stalled is not None
    assert (stalled.status, stalled.reason, stalled.last_transition_time) == (
        "True",
        reasons.RESTARTS_EXHAUSTED,
        T3,
    )
    assert kstatus_of(failed, 1) == "Failed"


def test_a_changed_spec_reads_in_progress_until_reconciled() -> None:
    running = step(FineTuneJobStatus(), "Running", reasons.ALL_WORKERS_RUNNING, T0, generation=1)
    assert kstatus_of(running, 2) == "InProgress"  # e.g. runPolicy.suspend just set, not yet acted on
    suspended = step(running, "Suspended", reasons.SUSPENDED_BY_USER, T1, generation=2)
    assert kstatus_of(suspended, 2) == "Current"
    for type_ in (reasons.READY, reasons.RECONCILING, reasons.SUSPENDED):
        condition = find_condition(suspended.conditions, type_)
        assert condition is not None and condition.observed_generation == 2, type_


def test_evaljob_waiting_for_its_finetunejob_is_in_progress() -> None:
    waiting = waiting_status(EvalJobStatus(), reasons.MODEL_NOT_READY, "review-rating is Running", T0, 1)
    assert kstatus_of(waiting, 1) == "InProgress"
    assert find_condition(waiting.conditions, reasons.STALLED) is None


def test_a_finished_job_whose_ttl_changed_reads_finished_again() -> None:
    failed = step(FineTuneJobStatus(), "Failed", reasons.PENDING_TIMEOUT, T0, generation=1)
    assert kstatus_of(failed, 2) == "InProgress"  # runPolicy.ttlSecondsAfterFinished edited: generation 2
    observed = observed_finished(failed, 2)
    assert kstatus_of(observed, 2) == "Failed"
    assert {c.observed_generation for c in observed.conditions} == {2}
    assert [c.last_transition_time for c in observed.conditions] == [
        c.last_transition_time for c in failed.conditions
    ]
    assert {c.observed_generation for c in failed.conditions} == {1}  # the previous status is not edited
    assert observed_finished(observed, 2) is observed  # nothing to patch when nothing changed
