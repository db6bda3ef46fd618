"""RFC 3339 timestamps as the API writes them (`2026-01-01T12:00:00Z`: UTC, whole seconds): status
times, progress reports, checkpoint manifests, log lines. The one time helper of operator and pods."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> str:
    return rfc3339(datetime.now(UTC))


def parse_rfc3339(value: str | None) -> datetime | None:
    """A Kubernetes or kubetune timestamp (`Z` or an offset); None for a missing one."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
