"""The kubelet's HTTPS log endpoint, so `kubectl logs` (and the API's pods/log) work on agent pods.

The API server reaches it at the node's InternalIP and `daemonEndpoints.kubeletEndpoint.Port`. Its
serving certificate is issued by the local stack's CA (which the API server trusts through
--kubelet-certificate-authority), or by a throw-away CA when the agent runs outside the stack.
Client certificates are not checked: the endpoint listens on loopback addresses only and serves
nothing but logs (no exec, attach or port-forward).
"""

from __future__ import annotations

import datetime
import logging
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlparse

from kubetune_devtools.devstack.layout import StackLayout
from kubetune_devtools.devstack.node_agent.config import KUBELET_PORT
from kubetune_devtools.devstack.node_agent.logs import BadLogRequestError, parse_log_options, select_log
from kubetune_devtools.devstack.pki import CA_NAME, CertRequest, generate_ca, issue_certificate

log = logging.getLogger(__name__)

FOLLOW_POLL_SECONDS = 0.2


class LogLocator(Protocol):
    def log_file(self, namespace: str, pod: str, container: str, previous: bool) -> Path | None: ...

    def is_running(self, namespace: str, pod: str, container: str) -> bool: ...


def serving_certificate(agent_state_dir: Path, hosts: tuple[str, ...], out_dir: Path) -> tuple[Path, Path]:
    """(cert, key) files for the endpoint, signed by the stack's CA next to the agent's state dir if any."""
    stack = StackLayout(agent_state_dir.parent)
    now = datetime.datetime.now(datetime.UTC)
    request = CertRequest(
        "kubelet", "system:node:kubetune-node-agent", hosts=hosts, server=True, client=False
    )
    try:
        ca_cert, ca_key = stack.cert(CA_NAME).read_bytes(), stack.key(CA_NAME).read_bytes()
        cert, key = issue_certificate(request, ca_cert, ca_key, now)
    except (OSError, ValueError, TypeError) as error:  # no stack CA here, or one not made by devstack.pki
        log.info("kubelet endpoint: stack CA not usable (%s); using a throw-away CA", error)
        cert, key = issue_certificate(request, *generate_ca(now), now)
    out_dir.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = out_dir / "kubelet.crt", out_dir / "kubelet.key"
    cert_file.write_bytes(cert)
    key_file.touch(mode=0o600)
    key_file.write_bytes(key)
    return cert_file, key_file


def _read_from(path: Path, offset: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read()


def _handler(locator: LogLocator, stopping: threading.Event) -> type[BaseHTTPRequestHandler]:
    class ContainerLogsHandler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            log.debug("kubelet endpoint: " + format, *args)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            if url.path == "/healthz":
                self._reply(200, b"ok")
                return
            if len(parts) != 4 or parts[0] != "containerLogs":
                self._reply(404, b"the kubetune node agent serves only /containerLogs/<ns>/<pod>/<container>")
                return
            _, namespace, pod, container = parts
            try:
                options = parse_log_options(parse_qs(url.query))
            except BadLogRequestError as error:
                self._reply(400, str(error).encode())
                return
            path = locator.log_file(namespace, pod, container, options.previous)
            if path is None or not path.exists():
                self._reply(404, f"no log of container {container!r} in pod {namespace}/{pod}".encode())
                return
            data = select_log(path.read_bytes(), options)
            if not options.follow:
                self._reply(200, data)
                return
            self._stream(path, data, lambda: locator.is_running(namespace, pod, container))

        def _reply(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream(self, path: Path, first: bytes, running: Callable[[], bool]) -> None:
            """Send what exists, then what gets appended, until the container stops.

            The handler speaks HTTP/1.0, so the body simply ends when the connection closes.
            """
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            offset = path.stat().st_size
            chunk = first
            try:
                while True:
                    if chunk:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    if stopping.is_set() or not running():
                        break
                    time.sleep(FOLLOW_POLL_SECONDS)
                    chunk = _read_from(path, offset)
                    offset += len(chunk)
                self.wfile.write(_read_from(path, offset))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped following

    return ContainerLogsHandler


class KubeletEndpoints:
    """One HTTPS server per node address, each in a daemon thread."""

    def __init__(self, locator: LogLocator, cert_file: Path, key_file: Path) -> None:
        self._locator = locator
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert_file, key_file)
        self._servers: list[ThreadingHTTPServer] = []
        self._stopping = threading.Event()

    def serve(self, address: str, port: int = KUBELET_PORT) -> bool:
        try:
            server = ThreadingHTTPServer((address, port), _handler(self._locator, self._stopping))
        except OSError as error:
            log.warning(
                "kubelet endpoint %s:%d not started (%s); kubectl logs will not work there",
                address,
                port,
                error,
            )
            return False
        server.daemon_threads = True
        server.socket = self._context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, name=f"kubelet-{address}", daemon=True).start()
        self._servers.append(server)
        return True

    def stop(self) -> None:
        self._stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
