"""JSON-lines logging for pods (one object per line: time, level, logger, message, extra fields)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from kubetune_operator.api.timestamps import utc_now

_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": utc_now(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class PlainFormatter(logging.Formatter):
    """`LEVEL message key=value ...` for terminals."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        return f"{record.levelname} {record.getMessage()} {extras}".rstrip()


def configure_logging(json_lines: bool, rank: int = 0) -> None:
    """JSON lines on stderr in pods; plain messages locally (the progress bar shows the numbers)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonLinesFormatter())
    else:
        handler.setFormatter(PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Other ranks only report problems: N copies of every line help nobody.
    root.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    for noisy in ("httpx", "botocore", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
