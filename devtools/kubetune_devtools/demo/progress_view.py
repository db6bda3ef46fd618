"""One line of live progress per job, from the FineTuneJob/EvalJob status (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubetune_operator.api.timestamps import parse_rfc3339


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "–"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _failure(status: Mapping[str, Any]) -> str:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return f" — {condition.get('reason')}: {condition.get('message')}"
    return ""


def finetune_line(status: Mapping[str, Any]) -> str:
    """`Running  step 40/160 (25.0%)  loss 2.113  ETA 1m05s`."""
    phase = status.get("phase") or "Pending"
    progress = status.get("progress") or {}
    if not progress:
        return f"{phase}{_failure(status)}"
    loss = progress.get("trainLoss")
    loss_text = "–" if loss is None else f"{float(loss):.3f}"
    return (
        f"{phase}  step {progress.get('step', 0)}/{progress.get('totalSteps', 0)} "
        f"({float(progress.get('percent', 0.0)):.1f}%)  loss {loss_text}  "
        f"ETA {_eta(progress.get('etaSeconds'))}{_failure(status)}"
    )


def eval_line(status: Mapping[str, Any]) -> str:
    phase = status.get("phase") or "Pending"
    verdict = f"  verdict {status['verdict']}" if status.get("verdict") else ""
    return f"{phase}{verdict}{_failure(status)}"


def finished(status: Mapping[str, Any]) -> bool:
    return status.get("phase") in ("Succeeded", "Failed")


def run_seconds(status: Mapping[str, Any]) -> float | None:
    """Seconds from `status.startTime` to `status.completionTime` (None while either is missing)."""
    start, end = parse_rfc3339(status.get("startTime")), parse_rfc3339(status.get("completionTime"))
    if start is None or end is None:
        return None
    return (end - start).total_seconds()
