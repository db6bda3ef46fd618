"""Run policies: restart budget, deadline, TTL, suspend (each a small pure module)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubetune_operator.controller import reasons
from kubetune_operator.controller.failures import WorkerFailure
from kubetune_operator.controller.names import attempt_of, child_job_name
from kubetune_operator.controller.policies.deadline import deadline_exceeded
from kubetune_operator.controller.policies.restart import decide_restart
from kubetune_operator.controller.policies.suspend import desired_job_suspend
from kubetune_operator.controller.policies.ttl import seconds_until_expiry, ttl_expired

NOW = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
ERROR = WorkerFailure(reasons.ERROR, "worker 1 exited with code 3", True)


def test_restart_until_budget_then_fail_with_the_worker_reason() -> None:
    first = decide_restart(ERROR, 0, 2)
    assert first.restart and "1/2" in first.message
    assert decide_restart(ERROR, 1, 2).restart
    last = decide_restart(ERROR, 2, 2)
    assert not last.restart and last.reason == reasons.ERROR and "exhausted (2/2" in last.message
    assert not decide_restart(ERROR, 0, 0).restart


def test_non_retriable_failure_never_restarts() -> None:
    failure = WorkerFailure(reasons.MISSING_SECRET, "secret gone", False)
    assert decide_restart(failure, 0, 5) == decide_restart(failure, 0, 5)
    assert not decide_restart(failure, 0, 5).restart


def test_deadline_counts_from_start_time() -> None:
    assert deadline_exceeded("2026-01-01T00:59:00Z", 60, NOW)
    assert not deadline_exceeded("2026-01-01T00:59:30Z", 60, NOW)
    assert not deadline_exceeded(None, 60, NOW)
    assert not deadline_exceeded("2026-01-01T00:00:00Z", None, NOW)


def test_ttl_counts_from_completion_time() -> None:
    assert ttl_expired("2026-01-01T00:59:00Z", 0, NOW)
    assert not ttl_expired("2026-01-01T00:59:00Z", 120, NOW)
    assert seconds_until_expiry("2026-01-01T00:59:00Z", 120, NOW) == pytest.approx(60)
    assert not ttl_expired(None, 0, NOW)


@pytest.mark.parametrize(
    ("spec_suspend", "queue", "job_suspended", "expected"),
    [
        (True, None, False, True),  # user suspends
        (True, None, True, None),  # already suspended
        (False, None, True, False),  # user resumes
        (False, None, False, None),
        (False, "q", True, None),  # Kueue decides admission: never unsuspend a queued Job
        (True, "q", False, True),  # but a user's suspend still applies
    ],
)
def test_suspend_mapping(
    spec_suspend: bool, queue: str | None, job_suspended: bool, expected: bool | None
) -> None:
    assert desired_job_suspend(spec_suspend, queue, job_suspended) is expected


def test_attempt_names_round_trip_and_reject_foreign_jobs() -> None:
    assert attempt_of(child_job_name("my-job", 3), "my-job") == 3
    assert attempt_of("my-job-r1", "my") is None
    assert attempt_of("other-r1", "my-job") is None


def test_a_disruption_restarts_without_spending_the_budget() -> None:
    evicted = WorkerFailure(reasons.DISRUPTED, "worker 0 was disrupted (EvictionByEvictionAPI)", True, False)
    first = decide_restart(evicted, 0, 0)
    assert first.restart and first.reason == reasons.DISRUPTED and "(0/0 spent)" in first.message
    # After two free restarts, attempt 3's error still finds the whole budget of 1, then exhausts it.
    assert decide_restart(ERROR, 2, 1, free_restarts=2).restart
    assert "1/1" in decide_restart(ERROR, 2, 1, free_restarts=2).message
    last = decide_restart(ERROR, 3, 1, free_restarts=2)
    assert not last.restart and "exhausted (1/1" in last.message
