"""`activeDeadlineSeconds`: wall-clock limit counted from the job's first start, across restarts."""

from __future__ import annotations

from datetime import datetime

from kubetune_operator.api.timestamps import parse_rfc3339


def deadline_exceeded(start_time: str | None, active_deadline_seconds: int | None, now: datetime) -> bool:
    started = parse_rfc3339(start_time)
    if started is None or active_deadline_seconds is None:
        return False
    return (now - started).total_seconds() >= active_deadline_seconds
