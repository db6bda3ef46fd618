"""One logging setup for every kubetune process: JSON lines in pods, readable text in a terminal.

The operator, the trainer and the evaluator all call `configure_logging`; it lives in the API package
because the pods may import only that one (it imports no kopf). A JSON line holds time, level, logger,
message and the record's extra fields; Kopf's per-object records carry the object as `object`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from kubetune_operator.api.timestamps import utc_now

# Attributes every LogRecord has, and Kopf's per-object ones (its settings, a posting flag, the object).
_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}
_KOPF = {"settings", "k8s_skip", "k8s_ref"}
# Held at WARNING: client libraries' chatter, and one access line per liveness probe of the operator.
_NOISY = ("httpx", "botocore", "urllib3", "filelock", "asyncio", "aiohttp.access")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and k not in _KOPF}


def _object(record: logging.LogRecord) -> str | None:
    """`namespace/name` of the object a Kopf handler logged about, if any."""
    ref = getattr(record, "k8s_ref", None)
    if not isinstance(ref, dict) or not ref.get("name"):
        return None
    return f"{ref['namespace']}/{ref['name']}" if ref.get("namespace") else str(ref["name"])


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": utc_now(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        subject = _object(record)
        if subject is not None:
            payload["object"] = subject
        payload.update(_extras(record))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class PlainFormatter(logging.Formatter):
    """`LEVEL [object] message key=value ...` for terminals; `detailed`: `HH:MM:SS LEVEL logger ...` (a
    long-running process such as the operator, whose lines are read later and filtered by logger)."""

    def __init__(self, detailed: bool = False) -> None:
        super().__init__(datefmt="%H:%M:%S")
        self.detailed = detailed

    def format(self, record: logging.LogRecord) -> str:
        subject = _object(record)
        parts = [self.formatTime(record, self.datefmt)] if self.detailed else []
        parts.append(record.levelname)
        if self.detailed:
            parts.append(record.name)
        parts += [*([f"[{subject}]"] if subject else []), record.getMessage()]
        parts += [f"{k}={v}" for k, v in _extras(record).items()]
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def in_pod() -> bool:
    """Whether this process runs in a Kubernetes pod (the kubelet sets this variable in every one)."""
    return "KUBERNETES_SERVICE_HOST" in os.environ


def configure_logging(
    json_lines: bool, rank: int = 0, *, verbose: bool = False, detailed: bool = False
) -> None:
    """Root logging on stderr: JSON lines (pods) or plain text (terminals); INFO, DEBUG when verbose.

    Ranks above 0 of a multi-process job log warnings only: N copies of every line help nobody."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLinesFormatter() if json_lines else PlainFormatter(detailed))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO if rank == 0 else logging.WARNING)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
