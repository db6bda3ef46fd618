"""run_attempts against an in-memory API after whose calls the operator dies: each call of a crash-free
history in turn (and every other call from there on) takes effect, then the operator dies before it sees
the answer, and status is not written. Whatever the point, there are never two Jobs for one attempt, never
a lost or an extra restart, and nothing is adopted from a deleted namesake."""

from __future__ import annotations

import builtins
import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from kubetune_operator.api import FineTuneJobSpec, RunPolicy
from kubetune_operator.api.common import JobStatus
from kubetune_operator.controller.attempts import Workload, run_attempts
from kubetune_operator.controller.builders import (
    Owner,
    build_config_map,
    build_headless_service,
    build_worker_job,
)
from kubetune_operator.controller.kube import KubeError
from kubetune_operator.controller.names import (
    ANNOTATION_COMPLETION_INDEX,
    ANNOTATION_FREE_RESTARTS,
    LABEL_ATTEMPT,
    attempt_of,
)
from kubetune_operator.controller.settings import OperatorSettings

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SETTINGS = OperatorSettings(trainer_module="fake", launcher="python")
OWNER = Owner(kind="FineTuneJob", name="tune", namespace="ns", uid="uid-new")
SPEC = FineTuneJobSpec.model_validate(
    {
        "model": {"uri": "s3://models/base/"},
        "dataset": {"uri": "s3://data/x.jsonl"},
        "output": {"uri": "s3://models/out/"},
        "resources": {"nodes": 1},
    }
)


class OperatorCrashError(Exception):
    """The operator process died."""


class MemoryApi:
    """Just enough of the API server, Job controller and garbage collector for run_attempts. Attempt 0's
    pod fails with exit code 3 (a retriable error); later attempts complete. `outcomes` changes that per
    attempt: "error", "evicted" (stopped through the Eviction API) or "complete"."""

    def __init__(self, outcomes: dict[int, str] | None = None) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.uids = itertools.count()
        self.calls = 0
        self.crash_at: set[int] = set()
        self.jobs_ever: list[str] = []
        self.outcomes = outcomes or {0: "error"}

    def _call(self) -> None:
        self.calls += 1

    def _maybe_crash(self) -> None:
        if self.calls in self.crash_at:
            raise OperatorCrashError

    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        stored = {**body, "metadata": {**body["metadata"], "uid": f"uid-{next(self.uids)}"}}
        self.objects[(body["kind"], body["metadata"]["name"])] = stored
        if body["kind"] == "Job":
            self.jobs_ever.append(body["metadata"]["name"])
            self._run_pods(stored)
        return stored

    def _run_pods(self, job: dict[str, Any]) -> None:
        template = job["spec"]["template"]
        attempt = int(template["metadata"]["labels"][LABEL_ATTEMPT])
        outcome = self.outcomes.get(attempt, "complete")
        failed = outcome != "complete"
        exit_code = {"error": 3, "evicted": 143}.get(outcome, 0)
        terminated = {"exitCode": exit_code, "reason": "Error" if failed else "Completed"}
        pod: dict[str, Any] = {
            "kind": "Pod",
            "metadata": {
                "name": f"{job['metadata']['name']}-0-x",
                "labels": template["metadata"]["labels"],
                "annotations": {ANNOTATION_COMPLETION_INDEX: "0"},
                "ownerReferences": [{"kind": "Job", "uid": job["metadata"]["uid"]}],
            },
            "status": {
                "phase": "Failed" if failed else "Succeeded",
                "containerStatuses": [{"state": {"terminated": terminated}}],
            },
        }
        if outcome == "evicted":
            pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            disruption = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
            pod["status"]["conditions"] = [{**disruption, "message": "Eviction API: evicting"}]
            # The Job's podFailurePolicy fails it once the pod stopped (builders._job).
            failed_by = {"type": "Failed", "status": "True", "reason": "PodFailurePolicy", "message": "x"}
            job["status"] = {"conditions": [failed_by]}
        self.add(pod)
        if not failed:
            job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}

    # The Kube interface used by run_attempts.
    def create(self, body: dict[str, Any]) -> bool:
        self._call()
        exists = (body["kind"], body["metadata"]["name"]) in self.objects
        if not exists:
            self.add(body)
        self._maybe_crash()
        return not exists

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._call()
        self._maybe_crash()
        return self.objects.get((kind, name))

    def list(self, kind: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        self._call()
        wanted = dict(part.split("=", 1) for part in label_selector.split(","))
        found = [
            obj
            for (k, _), obj in self.objects.items()
            if k == kind and wanted.items() <= (obj["metadata"].get("labels") or {}).items()
        ]
        self._maybe_crash()
        return found

    def delete(
        self, kind: str, namespace: str, name: str, propagation: str = "Background", uid: str | None = None
    ) -> bool:
        self._call()
        obj = self.objects.get((kind, name))
        gone = obj is None or (uid is not None and obj["metadata"]["uid"] != uid)
        if not gone:
            del self.objects[(kind, name)]
            # The garbage collector: dependents go with their owner.
            for key, dependent in list(self.objects.items()):
                owners = {ref.get("uid") for ref in dependent["metadata"].get("ownerReferences") or []}
                if obj is not None and obj["metadata"]["uid"] in owners:
                    del self.objects[key]
        self._maybe_crash()
        return not gone

    def merge_patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self._call()
        self._maybe_crash()

    def exists_metadata_only(self, kind: str, namespace: str, name: str) -> bool | None:
        self._call()
        self._maybe_crash()
        return True

    def live_attempts(self) -> builtins.list[int]:
        names = [name for (kind, name) in self.objects if kind == "Job"]
        return sorted(n for name in names if (n := attempt_of(name, OWNER.name)) is not None)


WORKLOAD = Workload(
    owner=OWNER,
    nodes=1,
    run_policy=RunPolicy.model_validate({"maxRestarts": 3}),
    credentials_secret=None,
    children=lambda attempt: [
        build_config_map(OWNER, SPEC),
        build_headless_service(OWNER),
        build_worker_job(OWNER, SPEC, attempt, SETTINGS),
    ],
)


def reconcile_until_done(api: MemoryApi, workload: Workload = WORKLOAD) -> dict[str, Any]:
    """Reconcile until the job is finished; status is only written by a reconcile that returned."""
    status: dict[str, Any] = {}
    for _ in range(60):
        try:
            previous = JobStatus(restarts=status.get("restarts", 0), phase=status.get("phase"))
            outcome = run_attempts(api, workload, previous, SETTINGS, NOW)  # type: ignore[arg-type]
        except OperatorCrashError:
            continue
        finally:
            # Never two Jobs for one attempt, at most the current and the next one alive at once.
            live = api.live_attempts()
            assert len(live) == len(set(live)) and len(live) <= 2, live
        status = {"restarts": outcome.attempt, "phase": outcome.transition.phase}
        if outcome.transition.phase == "Failed":
            status["message"] = outcome.transition.message
        if outcome.transition.phase in ("Succeeded", "Failed"):
            return status
    raise AssertionError("never finished")


def test_the_crash_free_history() -> None:
    api = MemoryApi()
    assert reconcile_until_done(api) == {"restarts": 1, "phase": "Succeeded"}
    assert api.jobs_ever == ["tune-r0", "tune-r1"] and api.calls == CRASH_FREE_CALLS


CRASH_FREE_CALLS = 10  # 4 to create attempt 0, 4 to restart, 2 to see it complete


@pytest.mark.parametrize("every_other", [False, True])
@pytest.mark.parametrize("first_crash", range(1, CRASH_FREE_CALLS + 1))
def test_a_crash_after_any_call_never_duplicates_or_loses_an_attempt(
    first_crash: int, every_other: bool
) -> None:
    api = MemoryApi()
    api.crash_at = set(range(first_crash, 100, 2)) if every_other else {first_crash}
    status = reconcile_until_done(api)
    assert status == {"restarts": 1, "phase": "Succeeded"}
    # Exactly one restart was made: attempt 0 failed, attempt 1 ran, each created once.
    assert api.jobs_ever == ["tune-r0", "tune-r1"]
    assert api.live_attempts() == [1]


def test_children_of_a_deleted_namesake_are_replaced_not_adopted() -> None:
    api = MemoryApi()
    old = Owner(kind="FineTuneJob", name="tune", namespace="ns", uid="uid-old")
    for body in (build_config_map(old, SPEC), build_worker_job(old, SPEC, 0, SETTINGS)):
        api.add(body)
    old_job_uid = api.objects[("Job", "tune-r0")]["metadata"]["uid"]
    status = reconcile_until_done(api)
    assert status == {"restarts": 1, "phase": "Succeeded"}
    config_map = api.objects[("ConfigMap", "tune-config")]
    assert [ref["uid"] for ref in config_map["metadata"]["ownerReferences"]] == ["uid-new"]
    assert api.objects[("Job", "tune-r1")]["metadata"]["ownerReferences"][0]["uid"] == "uid-new"
    assert old_job_uid not in {obj["metadata"]["uid"] for obj in api.objects.values()}


def test_a_child_owned_by_another_kind_fails_with_child_conflict() -> None:
    api = MemoryApi()
    user_owned = build_config_map(OWNER, SPEC)
    user_owned["metadata"]["ownerReferences"] = [{"kind": "EvalJob", "name": "tune", "uid": "uid-eval"}]
    api.add(user_owned)
    outcome = run_attempts(api, WORKLOAD, JobStatus(), SETTINGS, NOW)  # type: ignore[arg-type]
    assert (outcome.transition.phase, outcome.transition.reason) == ("Failed", "ChildConflict")
    assert "EvalJob tune (uid uid-eval)" in outcome.transition.message and api.jobs_ever == []


class NoDeleteRbacApi(MemoryApi):
    """The chart's RBAC: get and create, but no delete, on ConfigMaps."""

    def delete(
        self, kind: str, namespace: str, name: str, propagation: str = "Background", uid: str | None = None
    ) -> bool:
        if kind == "ConfigMap":
            self._call()
            raise KubeError(403, f'configmaps "{name}" is forbidden: cannot delete')
        return super().delete(kind, namespace, name, propagation, uid)


def test_without_rbac_to_delete_a_namesakes_leftover_the_job_waits_for_the_garbage_collector() -> None:
    api = NoDeleteRbacApi()
    api.add(build_config_map(Owner(kind="FineTuneJob", name="tune", namespace="ns", uid="uid-old"), SPEC))
    outcome = run_attempts(api, WORKLOAD, JobStatus(), SETTINGS, NOW)  # type: ignore[arg-type]
    assert (outcome.transition.phase, outcome.transition.reason) == ("Pending", "PodsPending")
    assert 'ConfigMap "tune-config" of a deleted FineTuneJob' in outcome.transition.message
    assert api.jobs_ever == []
    del api.objects[("ConfigMap", "tune-config")]  # the garbage collector, its owner being gone
    assert reconcile_until_done(api) == {"restarts": 1, "phase": "Succeeded"}


NO_BUDGET = Workload(
    owner=OWNER,
    nodes=1,
    run_policy=RunPolicy.model_validate({"maxRestarts": 0}),
    credentials_secret=None,
    children=WORKLOAD.children,
)


@pytest.mark.parametrize("first_crash", range(1, CRASH_FREE_CALLS + 1))
def test_an_eviction_restarts_the_gang_without_spending_max_restarts_whenever_the_operator_dies(
    first_crash: int,
) -> None:
    api = MemoryApi({0: "evicted"})
    api.crash_at = {first_crash}
    assert reconcile_until_done(api, NO_BUDGET) == {"restarts": 1, "phase": "Succeeded"}
    assert api.jobs_ever == ["tune-r0", "tune-r1"]
    # The count of free restarts was created with the attempt's Job, in the same request.
    job = api.objects[("Job", "tune-r1")]
    assert job["metadata"]["annotations"][ANNOTATION_FREE_RESTARTS] == "1"


def test_an_error_after_an_eviction_still_finds_max_restarts_zero_unspent_then_spent() -> None:
    api = MemoryApi({0: "evicted", 1: "error"})
    status = reconcile_until_done(api, NO_BUDGET)
    assert status["phase"] == "Failed" and status["restarts"] == 1
    assert "restart budget exhausted (0/0 restarts)" in status["message"]
    one_budget = Workload(OWNER, 1, RunPolicy.model_validate({"maxRestarts": 1}), None, WORKLOAD.children)
    api = MemoryApi({0: "evicted", 1: "error"})
    assert reconcile_until_done(api, one_budget) == {"restarts": 2, "phase": "Succeeded"}
    assert api.objects[("Job", "tune-r2")]["metadata"]["annotations"][ANNOTATION_FREE_RESTARTS] == "1"
