"""metav1.Condition list edits: pure functions over a status's typed conditions (api.common.Condition)."""

from __future__ import annotations

from collections.abc import Sequence

from kubetune_operator.api.common import Condition


def find_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Sequence[Condition], type_: str) -> bool:
    condition = find_condition(conditions, type_)
    return condition is not None and condition.status == "True"


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: bool,
    *,
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> list[Condition]:
    """A new list with `type_` set; lastTransitionTime moves only when the status flips (metav1 rule)."""
    wire_status = "True" if status else "False"
    previous = find_condition(conditions, type_)
    transition = now
    if previous is not None and previous.status == wire_status:
        transition = previous.last_transition_time or now
    updated = Condition(
        type=type_,
        status=wire_status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    # Replaced in place so that an unchanged condition list compares equal and costs no status patch; the
    # others are copies, so that editing the result never edits the previous status.
    result = [updated if c.type == type_ else c.model_copy() for c in conditions]
    if previous is None:
        result.append(updated)
    return result
