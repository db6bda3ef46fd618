"""Gang restart policy: a retriable worker failure restarts the whole gang, up to `maxRestarts` times,
after an exponential back-off; a disruption restarts it at once, without spending that budget."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubetune_operator.api.timestamps import parse_rfc3339
from kubetune_operator.controller.failures import WorkerFailure

MAX_RESTART_BACKOFF_SECONDS = 300.0
"""The back-off's cap, the kubelet's for a crash-looping container (5 min)."""


@dataclass(frozen=True)
class RestartDecision:
    restart: bool
    reason: str
    message: str


def decide_restart(
    failure: WorkerFailure, restarts: int, max_restarts: int, free_restarts: int = 0
) -> RestartDecision:
    """Restart when the failure is retriable and budget remains; otherwise fail with the failure's reason.

    `restarts` counts every gang restart so far, `free_restarts` those after disruptions (evictions,
    preemption, drains), which never spend the budget: nothing in the job caused them.
    """
    if not failure.retriable:
        return RestartDecision(False, failure.reason, failure.message)
    spent = restarts - free_restarts
    if not failure.spends_budget:
        message = (
            f"gang restart after a disruption, not counted against maxRestarts "
            f"({spent}/{max_restarts} spent): {failure.message}"
        )
        return RestartDecision(True, failure.reason, message)
    if spent < max_restarts:
        message = f"gang restart {spent + 1}/{max_restarts} after: {failure.message}"
        return RestartDecision(True, failure.reason, message)
    # The reason stays the worker's (Error, NodeLost ...): it is what the user has to act on.
    message = f"{failure.message}; restart budget exhausted ({spent}/{max_restarts} restarts)"
    return RestartDecision(False, failure.reason, message)


def restart_backoff_seconds(spent: int, first: float, cap: float = MAX_RESTART_BACKOFF_SECONDS) -> float:
    """The wait before the gang restart that follows `spent` budget-spending restarts: `first`, doubled
    after each, capped (the kubelet's CrashLoopBackOff: 10 s, 20 s, 40 s ... 5 min). A failure that comes
    back at once (a bad node, S3 credentials being rotated) then costs a few gangs spread over minutes, not
    `maxRestarts` model downloads in a row; 0 (or less): no wait."""
    if first <= 0:
        return 0.0
    return float(min(cap, first * 2.0 ** min(spent, 32)))  # 2**32 * anything is past any sane cap


def _terminated_at(pod: dict[str, Any]) -> datetime | None:
    times = [
        parse_rfc3339((status.get("state") or {}).get("terminated", {}).get("finishedAt"))
        for status in pod.get("status", {}).get("containerStatuses") or []
    ]
    return min((t for t in times if t is not None), default=None)


def failed_at(job: dict[str, Any], pods: list[dict[str, Any]]) -> datetime | None:
    """When the attempt failed, from what the cluster recorded (so an operator restart keeps counting
    from the same moment): the Job's Failed (or FailureTarget) condition, else the first failed pod's
    container end; None when neither says."""
    marked = [
        since
        for condition in job.get("status", {}).get("conditions") or []
        if condition.get("type") in ("FailureTarget", "Failed") and condition.get("status") == "True"
        if (since := parse_rfc3339(condition.get("lastTransitionTime"))) is not None
    ]
    if marked:
        return min(marked)
    ended = [
        t for pod in pods if pod.get("status", {}).get("phase") == "Failed" and (t := _terminated_at(pod))
    ]
    return min(ended, default=None)
