"""Gang restarts back off: the pure delay and failure time (policies/restart.py), and run_attempts keeping
a failed attempt's Job until the delay has passed, against a small in-memory API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubetune_operator.api import FineTuneJobSpec, RunPolicy
from kubetune_operator.api.common import JobStatus
from kubetune_operator.api.timestamps import rfc3339
from kubetune_operator.controller.attempts import AttemptOutcome, Workload, run_attempts
from kubetune_operator.controller.builders import Owner, build_worker_job
from kubetune_operator.controller.names import ANNOTATION_COMPLETION_INDEX, ANNOTATION_FREE_RESTARTS
from kubetune_operator.controller.policies.restart import (
    MAX_RESTART_BACKOFF_SECONDS,
    failed_at,
    restart_backoff_seconds,
)
from kubetune_operator.controller.settings import OperatorSettings

FAILED = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SETTINGS = OperatorSettings(trainer_module="fake", launcher="python", restart_backoff_seconds=10)
OWNER = Owner(kind="FineTuneJob", name="tune", namespace="ns", uid="uid-job")
SPEC = FineTuneJobSpec.model_validate(
    {
        "model": {"uri": "s3://models/base/"},
        "dataset": {"uri": "s3://data/x.jsonl"},
        "output": {"uri": "s3://models/out/"},
        "resources": {"nodes": 1},
    }
)


def test_the_delay_doubles_from_the_first_up_to_the_cap() -> None:
    delays = [restart_backoff_seconds(spent, 10) for spent in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert restart_backoff_seconds(1000, 10) == MAX_RESTART_BACKOFF_SECONDS == 300
    assert restart_backoff_seconds(3, 0) == 0.0 and restart_backoff_seconds(0, 1, cap=0.5) == 0.5


def _condition(type_: str, at: datetime) -> dict[str, Any]:
    return {"type": type_, "status": "True", "lastTransitionTime": rfc3339(at)}


def _failed_pod(finished: datetime | None, *, evicted: bool = False) -> dict[str, Any]:
    terminated: dict[str, Any] = {"exitCode": 143 if evicted else 137, "reason": "Error"}
    if finished is not None:
        terminated["finishedAt"] = rfc3339(finished)
    pod: dict[str, Any] = {
        "kind": "Pod",
        "metadata": {"name": "tune-r0-0-x", "annotations": {ANNOTATION_COMPLETION_INDEX: "0"}},
        "status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": terminated}}]},
    }
    if evicted:
        disruption = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
        pod["status"]["conditions"] = [disruption]
    return pod


def test_the_failure_time_is_the_job_condition_else_the_first_failed_container() -> None:
    later = FAILED + timedelta(seconds=5)
    job = {"status": {"conditions": [_condition("Failed", later), _condition("FailureTarget", FAILED)]}}
    assert failed_at(job, [_failed_pod(later)]) == FAILED
    assert failed_at({}, [_failed_pod(later), _failed_pod(FAILED)]) == FAILED
    not_true = {"status": {"conditions": [{**_condition("Failed", FAILED), "status": "False"}]}}
    assert failed_at(not_true, [_failed_pod(None)]) is None


class FailedAttemptApi:
    """The API after attempt `attempt` failed at FAILED: its Job (Failed condition) and its failed pod.
    Records the Jobs created and deleted."""

    def __init__(self, attempt: int = 0, *, evicted: bool = False, free: int = 0) -> None:
        job = build_worker_job(OWNER, SPEC, attempt, SETTINGS)
        job["metadata"]["uid"] = f"uid-r{attempt}"
        if free:
            job["metadata"].setdefault("annotations", {})[ANNOTATION_FREE_RESTARTS] = str(free)
        job["status"] = {"conditions": [_condition("FailureTarget", FAILED), _condition("Failed", FAILED)]}
        pod = _failed_pod(FAILED, evicted=evicted)
        pod["metadata"]["labels"] = job["spec"]["template"]["metadata"]["labels"]
        pod["metadata"]["ownerReferences"] = [{"kind": "Job", "uid": job["metadata"]["uid"]}]
        self.jobs = {job["metadata"]["name"]: job}
        self.pods = [pod]
        self.created: list[str] = []
        self.deleted: list[str] = []

    def list(self, kind: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return list(self.jobs.values()) if kind == "Job" else self.pods

    def create(self, body: dict[str, Any]) -> bool:
        name = body["metadata"]["name"]
        self.jobs[name] = {**body, "metadata": {**body["metadata"], "uid": f"uid-{name}"}}
        self.created.append(name)
        return True

    def delete(self, kind: str, namespace: str, name: str, uid: str | None = None) -> bool:
        self.deleted.append(name)
        return self.jobs.pop(name, None) is not None


def workload(max_restarts: int = 3) -> Workload:
    return Workload(
        owner=OWNER,
        nodes=1,
        run_policy=RunPolicy.model_validate({"maxRestarts": max_restarts}),
        credentials_secret=None,
        children=lambda attempt: [build_worker_job(OWNER, SPEC, attempt, SETTINGS)],
    )


def reconcile(api: FailedAttemptApi, seconds_after_failure: float, attempt: int = 0) -> AttemptOutcome:
    now = FAILED + timedelta(seconds=seconds_after_failure)
    previous = JobStatus(phase="Running", restarts=attempt)
    return run_attempts(api, workload(), previous, SETTINGS, now)  # type: ignore[arg-type]


def test_the_failed_attempt_stays_until_the_back_off_has_passed_then_the_gang_restarts() -> None:
    api = FailedAttemptApi()
    for seconds in (0, 5, 9.5):
        waiting = reconcile(api, seconds)
        assert waiting.transition.phase == "Restarting" and waiting.attempt == 0
        assert api.created == [] and api.deleted == [] and list(api.jobs) == ["tune-r0"]
    message = waiting.transition.message
    assert "back-off 10s" in message and "(1/3 of maxRestarts) starts at 2026-01-01T12:00:10Z" in message
    assert "code 137" in message and "gang restart" not in message  # the restart's own Event says that
    restarted = reconcile(api, 10)
    assert restarted.transition.phase == "Restarting" and restarted.attempt == 1
    assert "gang restart 1/3" in restarted.transition.message
    assert api.created == ["tune-r1"] and api.deleted == ["tune-r0"]


@pytest.mark.parametrize(("attempt", "delay"), [(1, 20), (2, 40)])
def test_each_restart_that_spent_the_budget_doubles_the_wait(attempt: int, delay: int) -> None:
    api = FailedAttemptApi(attempt)
    assert f"back-off {delay}s" in reconcile(api, delay - 1, attempt).transition.message
    assert api.created == []
    assert reconcile(api, delay, attempt).attempt == attempt + 1 and api.created == [f"tune-r{attempt + 1}"]


def test_free_restarts_do_not_lengthen_the_wait() -> None:
    # Attempt 2 after two disruptions: nothing of the budget spent yet, so the first delay.
    api = FailedAttemptApi(2, free=2)
    assert "back-off 10s" in reconcile(api, 5, 2).transition.message
    assert reconcile(api, 10, 2).attempt == 3


def test_a_disruption_restarts_at_once() -> None:
    api = FailedAttemptApi(evicted=True)
    outcome = reconcile(api, 0)
    assert outcome.attempt == 1 and api.created == ["tune-r1"] and api.deleted == ["tune-r0"]
    assert "not counted against maxRestarts" in outcome.transition.message


def test_no_back_off_when_the_budget_is_spent_or_set_to_zero() -> None:
    api = FailedAttemptApi(3)
    failed = reconcile(api, 0, 3)
    assert failed.transition.phase == "Failed" and "budget exhausted" in failed.transition.message
    immediate = OperatorSettings(trainer_module="fake", launcher="python", restart_backoff_seconds=0)
    api = FailedAttemptApi()
    outcome = run_attempts(api, workload(), JobStatus(phase="Running"), immediate, FAILED)  # type: ignore[arg-type]
    assert outcome.attempt == 1 and api.created == ["tune-r1"]
