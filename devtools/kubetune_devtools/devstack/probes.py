"""Readiness probes and a generic wait loop (poll with timeout, failure message says what was awaited)."""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """Raised by `wait_for`; an AssertionError so pytest reports it as a plain test failure."""


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float,
    message: str,
    interval: float = 0.25,
) -> T:
    """Poll `predicate` until it returns something truthy and return that value.

    Exceptions raised by the predicate count as "not yet" (an API server that is still starting refuses
    connections); the last one is quoted in the timeout message together with the last value.
    """
    deadline = time.monotonic() + timeout
    last_value: object = None
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_value, last_error = value, None
        except Exception as error:
            last_error = error
        if time.monotonic() >= deadline:
            detail = (
                f"last error: {last_error!r}" if last_error is not None else f"last value: {last_value!r}"
            )
            raise WaitTimeoutError(f"timed out after {timeout:g} s waiting for {message} ({detail})")
        time.sleep(interval)


def client_ssl_context(
    ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """Verifying context for our own CA; `ca_file=None` accepts any certificate (only used for the
    health ports of controller-manager/scheduler, which serve a throwaway self-signed certificate)."""
    if ca_file is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=str(ca_file))
    if cert_file is not None and key_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file))
    return context


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> bool:
    """True when `url` answers 2xx; False on any connection error or other status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            status: int = response.status
            return 200 <= status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False
