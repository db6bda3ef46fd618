"""The kubelet's HTTPS log endpoint, so `kubectl logs` (and the API's pods/log) work on agent pods.

The API server reaches it at the node's InternalIP and `daemonEndpoints.kubeletEndpoint.Port`. Its
serving certificate is issued by the local stack's CA (which the API server trusts through
--kubelet-certificate-authority). Like a kubelet with client-certificate authentication, it answers
only the API server: the TLS handshake requires a client certificate from the stack's CA (the one
kube-apiserver presents through --kubelet-client-certificate), and a request whose certificate names
another user gets 403. Loopback is no boundary here: every pod of the agent is a host process.
Without the stack's CA (an agent run outside `kubetune dev up`) the endpoint does not start.
"""

from __future__ import annotations

import datetime
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

from kubetune_devtools.devstack.layout import StackLayout
from kubetune_devtools.devstack.node_agent.config import KUBELET_PORT
from kubetune_devtools.devstack.node_agent.logs import (
    BadLogRequestError,
    parse_log_options,
    parse_log_path,
    select_log,
)
from kubetune_devtools.devstack.pki import (
    APISERVER_KUBELET_CLIENT_CN,
    CA_NAME,
    CertRequest,
    issue_certificate,
)

log = logging.getLogger(__name__)

FOLLOW_POLL_SECONDS = 0.2
HANDSHAKE_TIMEOUT_SECONDS = 10.0


class LogLocator(Protocol):
    def log_file(self, namespace: str, pod: str, container: str, previous: bool) -> Path | None: ...

    def is_running(self, namespace: str, pod: str, container: str) -> bool: ...


@dataclass(frozen=True)
class EndpointTLS:
    cert_file: Path
    key_file: Path
    client_ca_file: Path  # signed the API server's kubelet client certificate


def endpoint_tls(agent_state_dir: Path, hosts: tuple[str, ...], out_dir: Path) -> EndpointTLS:
    """A serving certificate from the stack's CA next to the agent's state dir, and that CA to check
    clients against; OSError/ValueError/TypeError when there is no usable stack CA."""
    stack = StackLayout(agent_state_dir.parent)
    now = datetime.datetime.now(datetime.UTC)
    request = CertRequest(
        "kubelet", "system:node:kubetune-node-agent", hosts=hosts, server=True, client=False
    )
    ca_cert, ca_key = stack.cert(CA_NAME).read_bytes(), stack.key(CA_NAME).read_bytes()
    cert, key = issue_certificate(request, ca_cert, ca_key, now)
    out_dir.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = out_dir / "kubelet.crt", out_dir / "kubelet.key"
    cert_file.write_bytes(cert)
    key_file.touch(mode=0o600)
    key_file.write_bytes(key)
    return EndpointTLS(cert_file, key_file, stack.cert(CA_NAME))


def _common_name(peer_certificate: Mapping[str, object] | None) -> str | None:
    """The CN of `SSLSocket.getpeercert()`'s subject (a tuple of RDNs, each a tuple of pairs)."""
    subject = (peer_certificate or {}).get("subject", ())
    for rdn in subject if isinstance(subject, tuple) else ():
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def _read_from(path: Path, offset: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read()


def _handler(locator: LogLocator, stopping: threading.Event) -> type[BaseHTTPRequestHandler]:
    class ContainerLogsHandler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            log.debug("kubelet endpoint: " + format, *args)

        def do_GET(self) -> None:
            tls = self.connection if isinstance(self.connection, ssl.SSLSocket) else None
            user = _common_name(tls.getpeercert() if tls is not None else None)
            if user != APISERVER_KUBELET_CLIENT_CN:
                self._reply(403, f"user {user!r} may not read logs from this node".encode())
                return
            url = urlparse(self.path)
            if url.path == "/healthz":
                self._reply(200, b"ok")
                return
            try:
                target = parse_log_path(url.path)
                options = parse_log_options(parse_qs(url.query))
            except BadLogRequestError as error:
                self._reply(400, str(error).encode())
                return
            if target is None:
                self._reply(404, b"the kubetune node agent serves only /containerLogs/<ns>/<pod>/<container>")
                return
            namespace, pod, container = target.namespace, target.pod, target.container
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


class _TLSServer(ThreadingHTTPServer):
    """Completes each TLS handshake in the connection's own thread, within a deadline.

    Wrapping the listening socket instead would run every handshake inside accept(), in the one
    serving thread: a local process that connects and stays silent would stall `kubectl logs` for
    the whole node.
    """

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext
    ) -> None:
        self.tls_context = context
        super().__init__(address, handler)

    def finish_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        if not isinstance(request, socket.socket):  # datagrams: never for a TCP server
            return
        request.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        with self.tls_context.wrap_socket(request, server_side=True) as connection:
            connection.settimeout(None)  # `kubectl logs -f` may wait long between lines
            super().finish_request(connection, client_address)

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            # Refused handshakes (no or a foreign client certificate), silent or vanished clients.
            log.debug("kubelet endpoint: connection from %s failed", client_address, exc_info=True)
        else:
            log.exception("kubelet endpoint: request from %s failed", client_address)


class KubeletEndpoints:
    """One HTTPS server per node address, each in a daemon thread."""

    def __init__(self, locator: LogLocator, tls: EndpointTLS) -> None:
        self._locator = locator
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(tls.cert_file, tls.key_file)
        self._context.verify_mode = ssl.CERT_REQUIRED
        self._context.load_verify_locations(cafile=tls.client_ca_file)
        self._servers: list[_TLSServer] = []
        self._stopping = threading.Event()

    def serve(self, address: str, port: int = KUBELET_PORT) -> bool:
        try:
            server = _TLSServer((address, port), _handler(self._locator, self._stopping), self._context)
        except OSError as error:
            log.warning(
                "kubelet endpoint %s:%d not started (%s); kubectl logs will not work there",
                address,
                port,
                error,
            )
            return False
        threading.Thread(target=server.serve_forever, name=f"kubelet-{address}", daemon=True).start()
        self._servers.append(server)
        return True

    def stop(self) -> None:
        self._stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
