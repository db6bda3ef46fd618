"""Gang restart policy: a retriable worker failure restarts the whole gang, up to `maxRestarts` times."""

from __future__ import annotations

from dataclasses import dataclass

from kubetune_operator.controller.failures import WorkerFailure


@dataclass(frozen=True)
class RestartDecision:
    restart: bool
    reason: str
    message: str


def decide_restart(failure: WorkerFailure, restarts: int, max_restarts: int) -> RestartDecision:
    """Restart when the failure is retriable and budget remains; otherwise fail with the failure's reason."""
    if not failure.retriable:
        return RestartDecision(False, failure.reason, failure.message)
    if restarts < max_restarts:
        message = f"gang restart {restarts + 1}/{max_restarts} after: {failure.message}"
        return RestartDecision(True, failure.reason, message)
    # The reason stays the worker's (Error, NodeLost ...): it is what the user has to act on.
    message = f"{failure.message}; restart budget exhausted ({restarts}/{max_restarts} restarts)"
    return RestartDecision(False, failure.reason, message)
