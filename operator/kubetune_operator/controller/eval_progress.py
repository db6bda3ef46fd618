"""EvalJob `status.progress` from the evaluator's rank 0 `/progress` (samples done over every shard)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from kubetune_operator.api import EvalProgress
from kubetune_operator.controller.progress import fetch_progress

EVAL_PROGRESS_FIELDS = frozenset(EvalProgress.model_fields) | {
    f.alias for f in EvalProgress.model_fields.values() if f.alias
}


def eval_progress_status(payload: Mapping[str, Any]) -> EvalProgress | None:
    """The known fields of a progress document, validated; None when it is not usable."""
    try:
        return EvalProgress.model_validate({k: v for k, v in payload.items() if k in EVAL_PROGRESS_FIELDS})
    except ValidationError:
        return None


def live_eval_progress(rank0_ip: str, port: int, timeout: float) -> EvalProgress | None:
    """Rank 0's progress now, or None (not serving yet, misbehaving: the status keeps the last one)."""
    payload = fetch_progress(rank0_ip, port, timeout)
    return eval_progress_status(payload) if payload is not None else None


def finished_progress(progress: EvalProgress | None) -> EvalProgress | None:
    """A succeeded EvalJob did all its samples: the last poll may have seen fewer (pods finish between
    polls)."""
    if progress is None:
        return None
    return progress.model_copy(
        update={"samples": progress.total_samples, "percent": 100.0, "eta_seconds": 0, "stage": "done"}
    )
