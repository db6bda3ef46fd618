"""Reading rank 0's `/progress` JSON (the trainer's HTTP endpoint) into the status shape."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from pydantic import ValidationError

from kubetune_operator.api import Progress

PROGRESS_FIELDS = frozenset(Progress.model_fields) | {
    f.alias for f in Progress.model_fields.values() if f.alias
}


def fetch_progress(ip: str, port: int, timeout: float) -> dict[str, Any] | None:
    """The raw JSON, or None when rank 0 is not serving yet (starting up, or just finished)."""
    # Pod IPs are plain HTTP inside the cluster network; no proxy applies to them.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{ip}:{port}/progress", timeout=timeout) as response:
            payload = json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def progress_status(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The `status.progress` dict (validated, camelCase), or None when the payload is not usable."""
    try:
        progress = Progress.model_validate({k: v for k, v in payload.items() if k in PROGRESS_FIELDS})
    except ValidationError:
        return None
    return progress.model_dump(mode="json", by_alias=True, exclude_none=True)


def checkpoint_status(payload: dict[str, Any]) -> dict[str, Any] | None:
    checkpoint = payload.get("lastCheckpoint")
    if (
        isinstance(checkpoint, dict)
        and isinstance(checkpoint.get("uri"), str)
        and isinstance(checkpoint.get("step"), int)
    ):
        return {"uri": checkpoint["uri"], "step": checkpoint["step"]}
    return None
