"""The kubelet's containerLogs endpoint, pure: which container a path names, which log bytes to send."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

# Kubernetes' own name grammar (apimachinery's IsDNS1123Label/IsDNS1123Subdomain): namespaces and
# container names are labels, pod names subdomains. Every name the API server accepts fits, and none
# can hold `/`, `..`, `_` or a glob character, so a name that fits is safe to join onto a file path.
_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(_LABEL)
DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
LABEL_MAX_LENGTH = 63
SUBDOMAIN_MAX_LENGTH = 253
LOG_PATH_PREFIX = "containerLogs"


class BadLogRequestError(ValueError):
    """A path part or query parameter the endpoint cannot honour (HTTP 400)."""


@dataclass(frozen=True)
class LogTarget:
    namespace: str
    pod: str
    container: str


def _check_name(kind: str, value: str, grammar: re.Pattern[str], max_length: int) -> str:
    if len(value) > max_length or grammar.fullmatch(value) is None:
        raise BadLogRequestError(f"{kind} {value!r} is not a valid Kubernetes name")
    return value


def parse_log_path(url_path: str) -> LogTarget | None:
    """The container that `/containerLogs/<namespace>/<pod>/<container>` names; None for any other path.

    Each part is percent-decoded before it is checked, so `..%2F..` is refused like `../..`.
    """
    parts = [unquote(part) for part in url_path.strip("/").split("/")]
    if len(parts) != 4 or parts[0] != LOG_PATH_PREFIX:
        return None
    return LogTarget(
        namespace=_check_name("namespace", parts[1], DNS1123_LABEL, LABEL_MAX_LENGTH),
        pod=_check_name("pod", parts[2], DNS1123_SUBDOMAIN, SUBDOMAIN_MAX_LENGTH),
        container=_check_name("container", parts[3], DNS1123_LABEL, LABEL_MAX_LENGTH),
    )


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
