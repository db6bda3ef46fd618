"""Reading rank 0's `/progress` JSON (the trainer's HTTP endpoint) into the status shape."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from kubetune_operator.api import CheckpointRef, Progress

PROGRESS_FIELDS = frozenset(Progress.model_fields) | {
    f.alias for f in Progress.model_fields.values() if f.alias
}
MAX_BODY_BYTES = 64 * 1024
"""A /progress document is a few hundred bytes; anything past this is refused unread."""
MAX_HEADER_BYTES = 16 * 1024
BREAKER_THRESHOLD = 3
"""Consecutive slow or oversized answers after which a pod is not asked for a while."""
BREAKER_COOLDOWN_SECONDS = 60.0


class _RefusedError(Exception):
    """The pod sent more than the cap or took longer than the deadline (counts towards its breaker)."""


class _BoundedReader(io.RawIOBase):
    """A socket reader with a total deadline and a byte budget for the whole response.

    A socket timeout alone bounds each recv, not the response: a pod dripping one byte a second would
    hold the operator's worker (and the job's lock) for as long as it liked.
    """

    def __init__(self, sock: socket.socket, deadline: float, budget: int) -> None:
        self._sock, self._deadline, self._left = sock, deadline, budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise _RefusedError("deadline exceeded")
        if self._left <= 0:
            raise _RefusedError("response larger than the cap")
        self._sock.settimeout(remaining)
        view = memoryview(buffer).cast("B")[: self._left]
        try:
            count = self._sock.recv_into(view)
        except TimeoutError:
            raise _RefusedError("deadline exceeded") from None
        self._left -= count
        return count


class _BoundedSocket:
    """What http.client.HTTPResponse needs of a socket: `makefile`, reading through `_BoundedReader`."""

    def __init__(self, reader: _BoundedReader) -> None:
        self._reader = reader

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self._reader, buffer_size=4096)


def _read_progress(ip: str, port: int, deadline: float) -> bytes | None:
    """The body of a 200 answer to GET /progress (None otherwise); _RefusedError past cap or deadline."""
    try:
        sock = socket.create_connection((ip, port), timeout=max(deadline - time.monotonic(), 0.001))
    except TimeoutError:
        raise _RefusedError("connect timed out") from None
    with sock:
        sock.sendall(f"GET /progress HTTP/1.1\r\nHost: {ip}:{port}\r\nConnection: close\r\n\r\n".encode())
        reader = _BoundedReader(sock, deadline, MAX_HEADER_BYTES + MAX_BODY_BYTES + 1)
        response = http.client.HTTPResponse(_BoundedSocket(reader))  # type: ignore[arg-type]
        response.begin()
        if response.status != 200:
            return None
        if (response.length or 0) > MAX_BODY_BYTES:
            raise _RefusedError("declared body larger than the cap")
        body = response.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            raise _RefusedError("body larger than the cap")
        return body


@dataclass
class _Breaker:
    failures: int = 0
    open_until: float = 0.0


class ProgressReader:
    """Reads rank 0's /progress within a byte cap and a total deadline, with a circuit breaker per pod.

    The reconcile of a job holds that job's lock and one of the operator's worker threads while it reads:
    after `BREAKER_THRESHOLD` consecutive answers that were too slow or too large the pod is skipped for
    `BREAKER_COOLDOWN_SECONDS` (its status keeps the last progress), then tried once again.
    """

    def __init__(self, max_pods: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[str, _Breaker] = {}
        self._max_pods = max_pods

    def fetch(self, ip: str, port: int, timeout: float) -> dict[str, Any] | None:
        """The raw JSON, or None when rank 0 is not serving (yet), misbehaves, or its breaker is open."""
        key = f"{ip}:{port}"
        now = time.monotonic()
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is not None and breaker.open_until > now:
                return None
        try:
            body = _read_progress(ip, port, now + timeout)
        except _RefusedError:
            self._record_failure(key)
            return None
        except (OSError, http.client.HTTPException):
            return None  # not listening yet, reset, or not HTTP: cheap, not counted
        with self._lock:
            self._breakers.pop(key, None)
        try:
            payload = json.loads(body) if body is not None else None
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None

    def _record_failure(self, key: str) -> None:
        with self._lock:
            if key not in self._breakers and len(self._breakers) >= self._max_pods:
                self._breakers.pop(next(iter(self._breakers)))  # oldest entry: the map stays bounded
            breaker = self._breakers.setdefault(key, _Breaker())
            breaker.failures += 1
            if breaker.failures >= BREAKER_THRESHOLD:
                breaker.open_until = time.monotonic() + BREAKER_COOLDOWN_SECONDS
                breaker.failures = BREAKER_THRESHOLD - 1  # half-open: one more failure re-opens it

    def is_open(self, ip: str, port: int) -> bool:
        with self._lock:
            breaker = self._breakers.get(f"{ip}:{port}")
            return breaker is not None and breaker.open_until > time.monotonic()


READER = ProgressReader()


def fetch_progress(ip: str, port: int, timeout: float) -> dict[str, Any] | None:
    """The raw JSON, or None when rank 0 is not serving yet (starting up, or just finished).

    `timeout` is the total deadline of the whole exchange (connect, headers, body); see ProgressReader.
    """
    return READER.fetch(ip, port, timeout)


def progress_status(payload: dict[str, Any]) -> Progress | None:
    """`status.progress` from a progress document (known fields only), or None when it is not usable."""
    try:
        return Progress.model_validate({k: v for k, v in payload.items() if k in PROGRESS_FIELDS})
    except ValidationError:
        return None


def checkpoint_status(payload: dict[str, Any]) -> CheckpointRef | None:
    """`status.lastCheckpoint` from a progress document or the final report, None when it names none."""
    checkpoint = payload.get("lastCheckpoint")
    if (
        isinstance(checkpoint, dict)
        and isinstance(checkpoint.get("uri"), str)
        and isinstance(checkpoint.get("step"), int)
    ):
        digest = checkpoint.get("digest")
        return CheckpointRef(
            uri=checkpoint["uri"], step=checkpoint["step"], digest=digest if isinstance(digest, str) else None
        )
    return None
