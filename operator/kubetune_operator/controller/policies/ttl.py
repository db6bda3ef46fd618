"""`ttlSecondsAfterFinished`: the finished job is deleted (children follow by ownerReference)."""

from __future__ import annotations

from datetime import datetime

from kubetune_operator.api.timestamps import parse_rfc3339


def ttl_expired(completion_time: str | None, ttl_seconds: int | None, now: datetime) -> bool:
    finished = parse_rfc3339(completion_time)
    if finished is None or ttl_seconds is None:
        return False
    return (now - finished).total_seconds() >= ttl_seconds


def seconds_until_expiry(completion_time: str | None, ttl_seconds: int | None, now: datetime) -> float | None:
    finished = parse_rfc3339(completion_time)
    if finished is None or ttl_seconds is None:
        return None
    return max(0.0, ttl_seconds - (now - finished).total_seconds())
