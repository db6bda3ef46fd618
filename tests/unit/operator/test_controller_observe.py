"""Pure observation of an attempt and failure classification, on Job/Pod dicts shaped like the API's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubetune_operator.api import contract
from kubetune_operator.controller import reasons
from kubetune_operator.controller.failures import classify_pod
from kubetune_operator.controller.observe import observe_attempt

NOW = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)


def pod(rank: int, phase: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"j-r0-{rank}",
            "annotations": {"batch.kubernetes.io/job-completion-index": str(rank)},
        },
        "status": {"phase": phase, "podIP": f"127.0.0.{rank + 2}", **status},
    }


def terminated(exit_code: int, reason: str = "Error", message: str = "") -> list[dict[str, Any]]:
    return [
        {
            "name": "trainer",
            "state": {"terminated": {"exitCode": exit_code, "reason": reason, "message": message}},
        }
    ]


def job(*conditions: str, suspend: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": "j-r0"},
        "spec": {"suspend": suspend},
        "status": {
            "conditions": [{"type": c, "status": "True", "reason": "X", "message": "y"} for c in conditions]
        },
    }


def test_all_workers_running_gives_running_with_rank0_ip() -> None:
    state = observe_attempt(job(), [pod(0, "Running"), pod(1, "Running")], 2, NOW, 300)
    assert (state.phase, state.rank0_ip) == ("Running", "127.0.0.2")


def test_partial_gang_is_pending() -> None:
    assert observe_attempt(job(), [pod(0, "Running"), pod(1, "Pending")], 2, NOW, 300).phase == "Pending"


def test_complete_job_reads_rank0_result() -> None:
    result = {"output": {"uri": "s3://b/out/", "digest": "sha256:ab"}}
    pods = [
        pod(0, "Succeeded", containerStatuses=terminated(0, "Completed", contract.encode_result(result))),
        pod(1, "Succeeded"),
    ]
    state = observe_attempt(job("Complete"), pods, 2, NOW, 300)
    assert state.phase == "Succeeded"
    assert state.result == result


def test_worker_exit_code_is_a_retriable_error_naming_the_worker() -> None:
    pods = [
        pod(0, "Running"),
        pod(1, "Failed", containerStatuses=terminated(3, message="boom\nValueError: x")),
    ]
    state = observe_attempt(job(), pods, 2, NOW, 300)
    assert state.phase == "Failed" and state.failure is not None
    assert state.failure.reason == reasons.ERROR and state.failure.retriable
    assert "worker 1" in state.message and "code 3" in state.message and "ValueError: x" in state.message


def test_oom_and_node_lost_are_retriable() -> None:
    oom = classify_pod(pod(0, "Failed", containerStatuses=terminated(137, "OOMKilled")), NOW, 300)
    # Out of memory is not retried with the same spec; the message says what to change.
    assert oom is not None and (oom.reason, oom.retriable) == (reasons.OUT_OF_MEMORY, False)
    assert "resources.memory" in oom.message and "batchSize" in oom.message
    lost = classify_pod(pod(0, "Failed", reason="NodeLost", message="node gone"), NOW, 300)
    assert lost is not None and (lost.reason, lost.retriable) == (reasons.NODE_LOST, True)


def _waiting(reason: str, message: str, age_seconds: float) -> dict[str, Any]:
    waiting = [{"name": "t", "state": {"waiting": {"reason": reason, "message": message}}}]
    created = (NOW - timedelta(seconds=age_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    waiting_pod = pod(0, "Pending", containerStatuses=waiting)
    waiting_pod["metadata"]["creationTimestamp"] = created
    return waiting_pod


def test_image_pull_and_missing_secret_fail_without_retry_once_the_pending_timeout_passed() -> None:
    for reason in ("ImagePullBackOff", "ErrImagePull"):
        # Within the window a registry hiccup may heal: the pod is still hopeful.
        assert classify_pod(_waiting(reason, "no such image", 299), NOW, 300) is None
        failure = classify_pod(_waiting(reason, "no such image", 301), NOW, 300)
        assert failure is not None and (failure.reason, failure.retriable) == (
            reasons.IMAGE_PULL_BACK_OFF,
            False,
        )
        assert reason in failure.message and "no such image" in failure.message
    # A malformed reference never heals: at once.
    invalid = classify_pod(_waiting("InvalidImageName", "bad ref", 1), NOW, 300)
    assert invalid is not None and invalid.reason == reasons.IMAGE_PULL_BACK_OFF
    # A Secret that syncs late (GitOps) gets the same window.
    assert classify_pod(_waiting("CreateContainerConfigError", 'secret "s" not found', 10), NOW, 300) is None
    failure = classify_pod(_waiting("CreateContainerConfigError", 'secret "s" not found', 400), NOW, 300)
    assert failure is not None and failure.reason == reasons.MISSING_SECRET and "secret" in failure.message


def test_unschedulable_only_after_the_pending_timeout() -> None:
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    unschedulable = pod(0, "Pending", conditions=[condition])
    assert classify_pod(unschedulable, NOW, 900) is None
    failure = classify_pod(unschedulable, NOW, 300)
    assert failure is not None and failure.reason == reasons.UNSCHEDULABLE and not failure.retriable


def test_workload_reported_reason_fails_fast() -> None:
    message = contract.encode_failure(
        contract.Reason.STORAGE_UNREACHABLE, "bucket models: connection refused"
    )
    failure = classify_pod(pod(0, "Failed", containerStatuses=terminated(2, message=message)), NOW, 300)
    assert failure is not None and failure.reason == reasons.STORAGE_UNREACHABLE and not failure.retriable


def test_suspended_job_ignores_pods_being_killed() -> None:
    dying = pod(0, "Failed", containerStatuses=terminated(143))
    assert observe_attempt(job(suspend=True), [dying], 1, NOW, 300).phase == "Suspended"


def test_suspend_after_the_last_step_still_succeeds_with_rank0_result() -> None:
    # Suspended before the Job controller recorded Complete.
    result = {"output": {"uri": "s3://b/out/", "digest": "sha256:ab"}}
    pods = [
        pod(0, "Succeeded", containerStatuses=terminated(0, "Completed", contract.encode_result(result))),
        pod(1, "Succeeded", containerStatuses=terminated(0, "Completed")),
    ]
    state = observe_attempt(job(suspend=True), pods, 2, NOW, 300)
    assert (state.phase, state.result) == ("Succeeded", result)


def test_suspend_with_a_rank_still_checkpointing_is_suspended() -> None:
    result = {"output": {"uri": "s3://b/out/", "digest": "sha256:ab"}}
    pods = [
        pod(0, "Succeeded", containerStatuses=terminated(0, "Completed", contract.encode_result(result))),
        pod(1, "Failed", containerStatuses=terminated(143)),
    ]
    assert observe_attempt(job(suspend=True), pods, 2, NOW, 300).phase == "Suspended"
    # Rank 0 stopped by SIGTERM after a checkpoint: exit 0 would still carry no result.
    stopped = [pod(0, "Succeeded", containerStatuses=terminated(0, "Completed"))]
    assert observe_attempt(job(suspend=True), stopped, 1, NOW, 300).phase == "Suspended"


def test_deleted_pods_left_to_the_job_controller_whose_failure_still_counts() -> None:
    dying = pod(1, "Failed", containerStatuses=terminated(137))
    dying["metadata"]["deletionTimestamp"] = "2026-01-01T00:09:00Z"
    assert observe_attempt(job(), [pod(0, "Running"), dying], 2, NOW, 300).phase == "Pending"
    state = observe_attempt(job("Failed"), [dying], 2, NOW, 300)
    assert state.phase == "Failed" and state.failure is not None and state.failure.retriable


def test_gang_that_finished_before_the_job_is_marked_complete_is_still_running() -> None:
    pods = [pod(0, "Succeeded"), pod(1, "Succeeded")]
    assert observe_attempt(job(), pods, 2, NOW, 300).phase == "Running"
    assert observe_attempt(job(), [pod(0, "Succeeded"), pod(1, "Pending")], 2, NOW, 300).phase == "Pending"


def evicted(rank: int, phase: str, reason: str = "EvictionByEvictionAPI", **status: Any) -> dict[str, Any]:
    """A pod stopped through the Eviction API (or another disruption): the API server marks it with the
    DisruptionTarget condition, then deletes it."""
    condition = {"type": "DisruptionTarget", "status": "True", "reason": reason, "message": "Eviction API"}
    disrupted = pod(rank, phase, conditions=[condition], **status)
    disrupted["metadata"]["deletionTimestamp"] = "2026-01-01T00:09:00Z"
    return disrupted


def test_an_evicted_worker_restarts_the_gang_without_spending_the_budget_once_it_stopped() -> None:
    # Still saving its SIGTERM checkpoint: no restart yet, even though its peer failed for want of it.
    stopping = evicted(0, "Running")
    peer = pod(1, "Failed", containerStatuses=terminated(1))
    waiting = observe_attempt(job(), [stopping, peer], 2, NOW, 300)
    assert waiting.phase == "Running" and waiting.reason == reasons.DISRUPTED
    assert "EvictionByEvictionAPI" in waiting.message
    stopped = evicted(0, "Failed", containerStatuses=terminated(143))
    state = observe_attempt(job(), [stopped, peer], 2, NOW, 300)
    assert state.phase == "Failed" and state.failure is not None
    assert state.failure.reason == reasons.DISRUPTED and "j-r0-0" in state.failure.message
    assert state.failure.retriable and not state.failure.spends_budget
    # A preempted pod is a disruption too; a worker's own non-retriable failure still decides.
    preempted = evicted(0, "Failed", reason="PreemptionByScheduler")
    failure = observe_attempt(job(), [preempted], 1, NOW, 300).failure
    assert failure is not None and not failure.spends_budget
    message = contract.encode_failure(contract.Reason.INVALID_SPEC, "row 3: 'word' is undefined")
    bad = pod(1, "Failed", containerStatuses=terminated(2, message=message))
    assert observe_attempt(job(), [stopped, bad], 2, NOW, 300).reason == reasons.INVALID_SPEC


def test_a_job_failed_by_its_disruption_rule_is_a_disruption_after_the_pod_is_gone() -> None:
    gone = job()
    gone["status"]["conditions"] = [
        {"type": "Failed", "status": "True", "reason": "PodFailurePolicy", "message": "Pod ns/j-r0-0 has ..."}
    ]
    state = observe_attempt(gone, [], 1, NOW, 300)
    assert state.phase == "Failed" and state.failure is not None
    assert state.failure.reason == reasons.DISRUPTED and not state.failure.spends_budget
    other = observe_attempt(job("Failed"), [], 1, NOW, 300).failure
    assert other is not None and other.reason == reasons.ERROR and other.spends_budget


def test_an_eviction_for_the_pods_own_storage_use_spends_the_budget() -> None:
    message = "Pod ephemeral local storage usage exceeds the total limit of containers 10Gi. "
    own = evicted(0, "Failed", reason="TerminationByKubelet")
    own["status"].update({"reason": "Evicted", "message": message})
    failure = observe_attempt(job(), [own], 1, NOW, 300).failure
    assert failure is not None and failure.reason == reasons.NODE_LOST and failure.spends_budget
    assert "exceeds the total limit" in failure.message
