"""Pure observation of one attempt: a child batch/v1 Job and its pods -> what state the attempt is in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from kubetune_operator.controller import reasons
from kubetune_operator.controller.failures import (
    JOB_FAILED_BY_POD_FAILURE_POLICY,
    WorkerFailure,
    classify_pod,
    disruption_of,
    rank_of,
    termination_report,
)

AttemptPhase = Literal["Pending", "Running", "Suspended", "Succeeded", "Failed"]
TERMINAL_POD_PHASES = frozenset({"Failed", "Succeeded"})


@dataclass(frozen=True)
class AttemptState:
    phase: AttemptPhase
    reason: str
    message: str
    failure: WorkerFailure | None = None
    result: dict[str, Any] | None = None
    """Rank 0's reported result (kubetune_operator.api.contract) once the attempt succeeded."""
    rank0_ip: str | None = None
    """Where rank 0 serves /progress while it runs."""


def _job_condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return dict(condition)
    return None


def _rank0(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((pod for pod in pods if rank_of(pod) == "0"), None)


def _rank0_result(rank0: dict[str, Any] | None) -> dict[str, Any] | None:
    """Rank 0's reported result (its termination message), None when it reported none."""
    report = termination_report(rank0) if rank0 is not None else None
    return report.result if report is not None else None


def _finished_result(
    pods: list[dict[str, Any]], rank0: dict[str, Any] | None, nodes: int
) -> dict[str, Any] | None:
    """Rank 0's result once every rank's pod has succeeded; None otherwise (a SIGTERM checkpoint exits 143
    and reports no result)."""
    succeeded = {rank_of(pod) for pod in pods if pod.get("status", {}).get("phase") == "Succeeded"}
    return _rank0_result(rank0) if len(succeeded - {"?"}) >= nodes else None


def observe_attempt(
    job: dict[str, Any], pods: list[dict[str, Any]], nodes: int, now: datetime, pending_timeout_seconds: float
) -> AttemptState:
    """Job conditions decide success; pods decide failure first (they say why, the Job only that it did)."""
    live_pods = [pod for pod in pods if not pod.get("metadata", {}).get("deletionTimestamp")]
    rank0 = _rank0(pods)
    if _job_condition(job, "Complete") or _job_condition(job, "SuccessCriteriaMet"):
        return AttemptState(
            "Succeeded", reasons.COMPLETED, "all workers finished", result=_rank0_result(rank0)
        )
    if job.get("spec", {}).get("suspend"):
        # A suspend that lands after the last step: every rank has exited 0 and rank 0 reported its result,
        # whether or not the Job controller has recorded Complete yet. The work is done, so the attempt
        # succeeded; showing Suspended would hide a finished model.
        result = _finished_result(pods, rank0, nodes)
        if result is not None:
            return AttemptState("Succeeded", reasons.COMPLETED, "all workers finished", result=result)
        # Pods of a suspended Job are being terminated on purpose: their exit codes are no failure.
        return AttemptState("Suspended", reasons.SUSPENDED_BY_USER, "child Job is suspended")
    # A pod being deleted (suspend, restart, eviction) is judged by the Job controller, not here.
    failures = [f for pod in live_pods if (f := classify_pod(pod, now, pending_timeout_seconds)) is not None]
    failed = _job_condition(job, "Failed") or _job_condition(job, "FailureTarget")
    # A non-retriable failure anywhere in the gang decides.
    final = next((f for f in failures if not f.retriable), None)
    if final is not None:
        return AttemptState("Failed", final.reason, final.message, failure=final)
    disrupted = [(pod, f) for pod in pods if (f := disruption_of(pod)) is not None]
    if disrupted:
        # Evicted, preempted, drained: it outranks its peers' errors (they lost a peer). The restart waits
        # until the pod has stopped, i.e. saved its SIGTERM checkpoint, which is also when its Job fails.
        failure = disrupted[0][1]
        if failed or all(pod.get("status", {}).get("phase") in TERMINAL_POD_PHASES for pod, _ in disrupted):
            return AttemptState("Failed", failure.reason, failure.message, failure=failure)
        message = f"{failure.message}; waiting for it to stop"
        return AttemptState("Running", reasons.DISRUPTED, message)
    if failures:
        failure = failures[0]  # the first worker that failed
        return AttemptState("Failed", failure.reason, failure.message, failure=failure)
    if failed:
        message = f"child Job failed: {failed.get('reason', '')}: {failed.get('message', '')}"
        if failed.get("reason") == JOB_FAILED_BY_POD_FAILURE_POLICY:
            # Its only rule: a pod with the DisruptionTarget condition, gone by now (builders._job).
            failure = WorkerFailure(reasons.DISRUPTED, message, True, spends_budget=False)
        else:
            failure = WorkerFailure(reasons.ERROR, message, True)
        return AttemptState("Failed", failure.reason, message, failure=failure)
    running = [pod for pod in live_pods if pod.get("status", {}).get("phase") == "Running"]
    finished = [pod for pod in live_pods if pod.get("status", {}).get("phase") == "Succeeded"]
    # Workers that already succeeded still count: the Job is marked Complete a moment after the last one.
    if len(running) + len(finished) >= nodes:
        ip = rank0.get("status", {}).get("podIP") if rank0 is not None else None
        return AttemptState(
            "Running", reasons.ALL_WORKERS_RUNNING, f"{len(running)}/{nodes} workers running", rank0_ip=ip
        )
    return AttemptState("Pending", reasons.PODS_PENDING, f"{len(running)}/{nodes} workers running")
