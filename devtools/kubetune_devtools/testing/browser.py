"""Open an HTML file in headless Chromium and read back what the page rendered, over the Chrome DevTools
Protocol (CDP): console errors, uncaught exceptions, and the value of a JavaScript expression evaluated in
the loaded page (e.g. the lengths of its SVG paths).

Chromium is the Debian package `chromium` (hack/install-system-packages.sh browser); the CDP client is
websocket-client (already installed with the Kubernetes client).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


class BrowserUnavailableError(RuntimeError):
    """No Chromium on PATH (install the Debian package `chromium`)."""


@dataclass
class RenderedPage:
    """What the page did while loading, and the evaluated expression's value."""

    value: Any
    console_errors: list[str] = field(default_factory=list)


def chromium_binary() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserUnavailableError(
        "no Chromium on PATH: install the Debian package `chromium` (hack/install-system-packages.sh browser)"
    )


@contextlib.contextmanager
def _chromium(timeout: float) -> Iterator[int]:
    """A headless Chromium with its DevTools endpoint on a free port; yields the port."""
    # Chromium's helper processes (renderers, crash handler) can still write into the profile for a moment
    # after the browser exits: the whole process group is stopped below, and a file written even later must
    # not fail the check (measured: "Directory not empty: 'Default'" in a CI run).
    with tempfile.TemporaryDirectory(prefix="kubetune-chromium-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [
                chromium_binary(),
                "--headless=new",
                "--no-sandbox",  # root in a container: the setuid sandbox is unavailable
                "--disable-gpu",
                "--no-first-run",
                "--disable-breakpad",  # no crash handler process outliving the browser
                "--remote-debugging-port=0",  # Chromium picks a port and writes it to DevToolsActivePort
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped as a whole below
        )
        try:
            active_port = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + timeout
            while not (active_port.exists() and active_port.read_text().strip()):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise BrowserUnavailableError(f"Chromium did not start (exit code {process.poll()})")
                time.sleep(0.1)
            yield int(active_port.read_text().splitlines()[0])
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the browser's process group, SIGKILL to whatever is left after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _page_websocket(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
        targets = json.loads(response.read())
    return str(next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"))


class _Session:
    """Numbered CDP commands over one websocket; events are kept for the caller."""

    def __init__(self, url: str, timeout: float) -> None:
        self._socket = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        self._socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"CDP {method}: {message['error']}")
                return dict(message.get("result") or {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(event.get("method") == method for event in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout:.0f}s")
            self.events.append(json.loads(self._socket.recv()))

    def close(self) -> None:
        self._socket.close()


def _errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        params = event.get("params") or {}
        if event.get("method") == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(str((details.get("exception") or {}).get("description") or details.get("text")))
        elif event.get("method") == "Runtime.consoleAPICalled" and params.get("type") == "error":
            errors.append(" ".join(str(arg.get("value")) for arg in params.get("args") or []))
        elif event.get("method") == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(str(params["entry"].get("text")))
    return errors


def render(html_file: Path, expression: str, timeout: float = 60) -> RenderedPage:
    """Load `html_file` in headless Chromium, then evaluate `expression` (JavaScript; its value must be
    JSON-serialisable) in the loaded page."""
    with _chromium(timeout) as port:
        session = _Session(_page_websocket(port), timeout)
        try:
            for domain in ("Runtime", "Log", "Page"):
                session.call(f"{domain}.enable")
            session.call("Page.navigate", url=html_file.resolve().as_uri())
            session.wait_for("Page.loadEventFired", timeout)
            result = session.call("Runtime.evaluate", expression=expression, returnByValue=True)
            if "exceptionDetails" in result:
                raise RuntimeError(f"expression failed: {result['exceptionDetails'].get('text')}")
            return RenderedPage(value=result["result"].get("value"), console_errors=_errors(session.events))
        finally:
            session.close()
