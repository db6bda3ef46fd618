"""Pure failure classification of one pod: what went wrong, and whether a gang restart can fix it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubetune_operator.api.contract import Report, read_message
from kubetune_operator.api.timestamps import parse_rfc3339
from kubetune_operator.controller import reasons
from kubetune_operator.controller.names import ANNOTATION_COMPLETION_INDEX, DISRUPTION_CONDITION

IMAGE_PULL_WAITING = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"})
# Waiting reasons no retry can fix (a malformed reference, an image a node must not pull): fail at once.
PERMANENT_IMAGE_WAITING = frozenset({"InvalidImageName", "ErrImageNeverPull"})
NODE_LOST_POD_REASONS = frozenset(
    {"NodeLost", "Evicted", "Terminated", "NodeShutdown", "DeletionByTaintManager"}
)
# DISRUPTION_CONDITION comes from the Eviction API (kubectl drain, the cluster autoscaler), scheduler
# preemption, a NoExecute taint, PodGC of a lost node and the kubelet (node pressure, graceful node
# shutdown). Child Jobs fail on it by their podFailurePolicy, with this reason (builders._job).
JOB_FAILED_BY_POD_FAILURE_POLICY = "PodFailurePolicy"
# A kubelet eviction for the pod's own usage over its limits (ephemeral storage, an emptyDir's sizeLimit)
# comes again with the same spec, so it spends the budget like any failure. The kubelet's messages:
# "Pod ephemeral local storage usage exceeds the total limit of containers ...", "Usage of EmptyDir volume
# ... exceeds the limit ...", "Container ... exceeded its local ephemeral storage limit ...".
OWN_LIMIT_EVICTION_WORDS = ("exceeds the total limit", "exceeds the limit", "exceeded its local")


@dataclass(frozen=True)
class WorkerFailure:
    reason: str
    message: str
    retriable: bool
    spends_budget: bool = True
    """False for disruptions: the gang restarts without spending runPolicy.maxRestarts."""


def disruption_condition(pod: dict[str, Any]) -> dict[str, Any] | None:
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == DISRUPTION_CONDITION and condition.get("status") == "True":
            return dict(condition)
    return None


def disruption_of(pod: dict[str, Any]) -> WorkerFailure | None:
    """A pod that Kubernetes stopped from outside (evicted, preempted, its node drained or gone): retried
    without spending the budget, since nothing in the job caused it; None for any other pod."""
    found = disruption_condition(pod)
    if found is None:
        return None
    status = pod.get("status", {})
    where = f"worker {rank_of(pod)} (pod {pod.get('metadata', {}).get('name')})"
    detail = f"{found.get('reason', '')}: {found.get('message', '')}".strip(": ")
    own_limit = status.get("reason") == "Evicted" and any(
        words in str(status.get("message", "")) for words in OWN_LIMIT_EVICTION_WORDS
    )
    if own_limit:
        return WorkerFailure(reasons.NODE_LOST, f"{where} was evicted: {status.get('message')}", True)
    return WorkerFailure(reasons.DISRUPTED, f"{where} was disrupted ({detail})", True, spends_budget=False)


def rank_of(pod: dict[str, Any]) -> str:
    return str(pod.get("metadata", {}).get("annotations", {}).get(ANNOTATION_COMPLETION_INDEX, "?"))


def termination_report(pod: dict[str, Any]) -> Report | None:
    """The workload's report (kubetune_operator.api.contract) from its finished container, or None."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated and terminated.get("message"):
            return read_message(str(terminated["message"]))
    return None


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return dict(terminated)
    return None


def _waiting_reasons(pod: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for status in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting")
        if waiting:
            found.append((str(waiting.get("reason", "")), str(waiting.get("message", ""))))
    return found


def _failed_pod(pod: dict[str, Any], where: str) -> WorkerFailure:
    status = pod.get("status", {})
    if status.get("reason") in NODE_LOST_POD_REASONS:
        return WorkerFailure(reasons.NODE_LOST, f"{where}: {status.get('message') or status['reason']}", True)
    report = termination_report(pod)
    terminated = _terminated(pod) or {}
    exit_code = terminated.get("exitCode")
    if report is not None and report.failure is not None:
        failure = report.failure
        if failure.reason is not None:
            # The workload knows why, and that the same spec would fail again: no restart.
            return WorkerFailure(failure.reason.value, f"{where}: {failure.message}".strip(), False)
        # A reason this operator does not know (a newer workload): an ordinary, retriable error.
        message = f"{where} exited with code {exit_code}: {failure.reported_reason}: {failure.message}"
        return WorkerFailure(reasons.ERROR, message[:1024], True)
    if terminated.get("reason") == "OOMKilled":
        # The same spec on the same limit runs out of memory again: no restart, say what to change.
        message = (
            f"{where} was OOMKilled (exit code {exit_code}): it needs more memory than resources.memory; "
            "raise resources.memory, or lower hyperparameters.batchSize or maxSeqLength, or use method lora"
        )
        return WorkerFailure(reasons.OUT_OF_MEMORY, message, False)
    detail = str(terminated.get("message") or "").strip().splitlines()
    tail = f": {detail[-1][:300]}" if detail else ""
    return WorkerFailure(reasons.ERROR, f"{where} exited with code {exit_code}{tail}", True)


def _age_seconds(pod: dict[str, Any], now: datetime) -> float | None:
    created = parse_rfc3339(pod.get("metadata", {}).get("creationTimestamp"))
    return None if created is None else (now - created).total_seconds()


def classify_pod(pod: dict[str, Any], now: datetime, pending_timeout_seconds: float) -> WorkerFailure | None:
    """A failure for a pod that failed or cannot start, None for a healthy (or still hopeful) pod."""
    where = f"worker {rank_of(pod)} (pod {pod.get('metadata', {}).get('name')})"
    status = pod.get("status", {})
    phase = status.get("phase")
    if phase == "Failed":
        return _failed_pod(pod, where)
    if phase != "Pending":
        return None
    # A registry that hiccups or a Secret that syncs late (GitOps applies it beside the job) heals by itself:
    # the kubelet retries both, so they fail the job only once the pod has waited for the pending timeout.
    waited = _age_seconds(pod, now)
    settled = waited is None or waited > pending_timeout_seconds
    for reason, message in _waiting_reasons(pod):
        if reason in IMAGE_PULL_WAITING and (settled or reason in PERMANENT_IMAGE_WAITING):
            return WorkerFailure(reasons.IMAGE_PULL_BACK_OFF, f"{where}: {reason}: {message}", False)
        if reason == "CreateContainerConfigError" and settled:
            # A Secret (or one of its keys) that the pod references does not exist: restarts cannot help.
            return WorkerFailure(reasons.MISSING_SECRET, f"{where}: {message}", False)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            since = parse_rfc3339(condition.get("lastTransitionTime"))
            if since is not None and (now - since).total_seconds() > pending_timeout_seconds:
                detail = condition.get("message", "")
                message = f"{where} unschedulable for over {pending_timeout_seconds:.0f}s: {detail}"
                return WorkerFailure(reasons.UNSCHEDULABLE, message, False)
    return None
