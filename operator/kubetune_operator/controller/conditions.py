"""metav1.Condition list edits: pure functions over plain dicts (the wire shape)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Conditions = list[dict[str, Any]]


def find_condition(conditions: Sequence[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(conditions: Sequence[dict[str, Any]], type_: str) -> bool:
    condition = find_condition(conditions, type_)
    return condition is not None and condition.get("status") == "True"


def set_condition(
    conditions: Sequence[dict[str, Any]],
    type_: str,
    status: bool,
    *,
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> Conditions:
    """A new list with `type_` set; lastTransitionTime moves only when the status flips (metav1 rule)."""
    wire_status = "True" if status else "False"
    previous = find_condition(conditions, type_)
    transition = now
    if previous is not None and previous.get("status") == wire_status:
        transition = str(previous.get("lastTransitionTime") or now)
    updated = {
        "type": type_,
        "status": wire_status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
        "observedGeneration": generation,
    }
    # Replaced in place so that an unchanged condition list compares equal and costs no status patch.
    result = [updated if c.get("type") == type_ else dict(c) for c in conditions]
    if previous is None:
        result.append(updated)
    return result
