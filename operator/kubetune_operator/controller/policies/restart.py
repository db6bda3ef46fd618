"""Gang restart policy: a retriable worker failure restarts the whole gang, up to `maxRestarts` times;
a disruption restarts it without spending that budget."""

from __future__ import annotations

from dataclasses import dataclass

from kubetune_operator.controller.failures import WorkerFailure


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
