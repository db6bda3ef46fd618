"""Selecting log bytes the way the kubelet's containerLogs endpoint does (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class BadLogRequestError(ValueError):
    """A query parameter the endpoint cannot honour."""


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None


def _non_negative(query: Mapping[str, list[str]], name: str) -> int | None:
    if name not in query:
        return None
    try:
        value = int(query[name][0])
    except ValueError as error:
        raise BadLogRequestError(f"{name} must be an integer, got {query[name][0]!r}") from error
    if value < 0:
        raise BadLogRequestError(f"{name} must not be negative")
    return value


def parse_log_options(query: Mapping[str, list[str]]) -> LogOptions:
    """The query of `GET /containerLogs/<ns>/<pod>/<container>` (timestamps/sinceSeconds are ignored)."""

    def flag(name: str) -> bool:
        return query.get(name, ["false"])[0].lower() in ("true", "1")

    return LogOptions(
        follow=flag("follow"),
        previous=flag("previous"),
        tail_lines=_non_negative(query, "tailLines"),
        limit_bytes=_non_negative(query, "limitBytes"),
    )


def select_log(data: bytes, options: LogOptions) -> bytes:
    """The last `tail_lines` lines, then at most `limit_bytes` bytes from their start."""
    if options.tail_lines is not None:
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-options.tail_lines :]) if options.tail_lines else b""
    if options.limit_bytes is not None:
        data = data[: options.limit_bytes]
    return data
