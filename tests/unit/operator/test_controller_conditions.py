"""metav1.Condition helpers and status derivation (phase -> conditions, times, events)."""

from __future__ import annotations

from kubetune_operator.api import Condition, EvalJobStatus, FineTuneJobStatus
from kubetune_operator.controller import reasons
from kubetune_operator.controller.conditions import find_condition, is_true, set_condition
from kubetune_operator.controller.status import Transition, derive_events, derive_status, waiting_status

T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"


def test_transition_time_moves_only_when_status_flips() -> None:
    first = set_condition([], "Running", True, reason="A", message="m", now=T0, generation=1)
    same = set_condition(first, "Running", True, reason="B", message="n", now=T1, generation=2)
    flipped = set_condition(same, "Running", False, reason="C", message="o", now=T2, generation=2)
    assert find_condition(same, "Running") == Condition(
        type="Running", status="True", reason="B", message="n", last_transition_time=T0, observed_generation=2
    )
    assert find_condition(flipped, "Running").last_transition_time == T2  # type: ignore[union-attr]
    assert not is_true(flipped, "Running")


def test_unchanged_condition_list_compares_equal() -> None:
    conditions = set_condition([], "A", True, reason="r", message="", now=T0, generation=1)
    conditions = set_condition(conditions, "B", False, reason="r", message="", now=T0, generation=1)
    again = set_condition(conditions, "A", True, reason="r", message="", now=T1, generation=1)
    assert again == conditions


def test_running_then_succeeded_sets_times_ready_and_events() -> None:
    pending = derive_status(
        FineTuneJobStatus(),
        Transition("Pending", "PodsPending", "0/2"),
        children_created=True,
        now=T0,
        generation=1,
    )
    assert pending.phase == "Pending" and pending.start_time is None
    assert is_true(pending.conditions, reasons.CREATED)
    running = derive_status(
        pending,
        Transition("Running", "AllWorkersRunning", "2/2"),
        children_created=True,
        now=T1,
        generation=1,
    )
    assert running.start_time == T1
    assert is_true(running.conditions, reasons.READY)
    done = derive_status(
        running, Transition("Succeeded", "Completed", "ok"), children_created=True, now=T2, generation=1
    )
    assert done.completion_time == T2 and done.start_time == T1
    assert is_true(done.conditions, reasons.SUCCEEDED)
    assert not is_true(done.conditions, reasons.RUNNING)
    assert find_condition(done.conditions, reasons.FAILED) is None
    assert done.observed_generation == 1
    events = derive_events(running, done)
    assert [(e.type, e.reason) for e in events] == [("Normal", "Completed")]
    assert derive_events(done, done) == []


def test_failure_without_children_and_warning_event() -> None:
    failed = derive_status(
        FineTuneJobStatus(),
        Transition("Failed", reasons.MISSING_SECRET, "no s3-creds"),
        children_created=False,
        now=T0,
        generation=3,
    )
    created = find_condition(failed.conditions, reasons.CREATED)
    assert created is not None and created.status == "False" and created.reason == reasons.MISSING_SECRET
    assert find_condition(failed.conditions, reasons.FAILED).message == "no s3-creds"  # type: ignore[union-attr]
    assert failed.completion_time == T0
    (event,) = derive_events(FineTuneJobStatus(), failed)
    assert (event.type, event.reason) == ("Warning", reasons.MISSING_SECRET)


def test_restarting_and_suspended_conditions_clear_when_running_again() -> None:
    restarting = derive_status(
        FineTuneJobStatus(),
        Transition("Restarting", reasons.ERROR, "worker 1 exited"),
        children_created=True,
        now=T0,
        generation=1,
    )
    restarting.restarts = 1
    assert is_true(restarting.conditions, reasons.RESTARTING)
    running = derive_status(
        restarting,
        Transition("Running", "AllWorkersRunning", ""),
        children_created=True,
        now=T1,
        generation=1,
    )
    assert find_condition(running.conditions, reasons.RESTARTING).status == "False"  # type: ignore[union-attr]
    assert find_condition(running.conditions, reasons.SUSPENDED) is None
    assert derive_events(FineTuneJobStatus(), restarting)[0].type == "Warning"


def test_waiting_status_then_event_once() -> None:
    waiting = waiting_status(EvalJobStatus(), reasons.MODEL_NOT_READY, "FineTuneJob x is Running", T0, 1)
    assert waiting.phase == "Pending"
    assert is_true(waiting.conditions, reasons.WAITING)
    assert [(e.type, e.reason) for e in derive_events(EvalJobStatus(), waiting)] == [
        ("Normal", "ModelNotReady")
    ]
    again = waiting_status(waiting, reasons.MODEL_NOT_READY, "FineTuneJob x is Running", T1, 1)
    assert derive_events(waiting, again) == []
