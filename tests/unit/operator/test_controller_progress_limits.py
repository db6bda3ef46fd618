"""The operator protects itself from rank 0's /progress: a byte cap, a total deadline, a breaker per pod.

Real local HTTP servers (raw sockets, as a hostile pod would write them): one drips a byte a second, one
sends a huge body; the read returns within its deadline and memory stays bounded.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from kubetune_operator.controller import progress
from kubetune_operator.controller.progress import MAX_BODY_BYTES, ProgressReader

Serve = Callable[[socket.socket], None]
HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
FLOOD_CHUNK = b"9" * 65536  # made once, outside the measured allocations


class RawServer:
    """Accepts connections on 127.0.0.1 and hands each to `serve` in a thread; counts connections."""

    def __init__(self, serve: Serve) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._serve = serve
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(4096)
                self._serve(conn)
            except OSError:
                pass  # the client gave up: that is the point

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Serve], RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Serve) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def drip_body(conn: socket.socket) -> None:
    conn.sendall(HEADERS + b"Content-Length: 100\r\n\r\n")
    for _ in range(100):
        conn.sendall(b" ")
        time.sleep(1.0)


def drip_headers(conn: socket.socket) -> None:
    for byte in HEADERS:
        conn.sendall(bytes([byte]))
        time.sleep(1.0)


def flood(conn: socket.socket, declared: bool) -> None:
    length = b"Content-Length: 1073741824\r\n" if declared else b""
    conn.sendall(HEADERS + length + b"\r\n")
    for _ in range(16384):  # 1 GiB, unless the reader hangs up first
        conn.sendall(FLOOD_CHUNK)


def timed_fetch(reader: ProgressReader, port: int, timeout: float) -> tuple[object, float, int]:
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = reader.fetch("127.0.0.1", port, timeout)
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, elapsed, peak


@pytest.mark.parametrize("handler", [drip_body, drip_headers], ids=["body", "headers"])
def test_a_dripping_pod_is_cut_off_at_the_deadline(
    serve: Callable[[Serve], RawServer], handler: Serve
) -> None:
    server = serve(handler)
    result, elapsed, _ = timed_fetch(ProgressReader(), server.port, 2.0)
    assert result is None
    assert 1.9 < elapsed < 2.5


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_a_flooding_pod_is_cut_off_at_the_cap_with_bounded_memory(
    serve: Callable[[Serve], RawServer], declared: bool
) -> None:
    server = serve(lambda conn: flood(conn, declared))
    result, elapsed, peak = timed_fetch(ProgressReader(), server.port, 2.0)
    assert result is None
    assert elapsed < 1.0
    assert peak < 4 * MAX_BODY_BYTES  # what was read is bounded by the cap, not by the 1 GiB sent


def test_a_body_just_under_the_cap_is_read(serve: Callable[[Serve], RawServer]) -> None:
    payload = {"step": 7, "padding": "x" * (MAX_BODY_BYTES - 100)}
    body = json.dumps(payload).encode()
    assert len(body) <= MAX_BODY_BYTES
    server = serve(
        lambda conn: conn.sendall(HEADERS + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    )
    assert ProgressReader().fetch("127.0.0.1", server.port, 2.0) == payload


def test_the_breaker_stops_asking_a_misbehaving_pod_and_others_are_unaffected(
    serve: Callable[[Serve], RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = serve(drip_body)
    good = serve(lambda conn: conn.sendall(HEADERS + b"Content-Length: 11\r\n\r\n" + b'{"step": 3}'))
    reader = ProgressReader()
    for _ in range(progress.BREAKER_THRESHOLD):
        assert reader.fetch("127.0.0.1", slow.port, 0.3) is None
    assert reader.is_open("127.0.0.1", slow.port)
    assert slow.connections == progress.BREAKER_THRESHOLD

    started = time.monotonic()
    assert reader.fetch("127.0.0.1", slow.port, 0.3) is None
    assert time.monotonic() - started < 0.05 and slow.connections == progress.BREAKER_THRESHOLD
    assert reader.fetch("127.0.0.1", good.port, 0.3) == {"step": 3}

    # After the cool-down one trial is made; its failure opens the breaker again at once.
    monkeypatch.setattr(progress, "BREAKER_COOLDOWN_SECONDS", 0.5)
    reader2 = ProgressReader()
    for _ in range(progress.BREAKER_THRESHOLD):
        reader2.fetch("127.0.0.1", slow.port, 0.2)
    assert reader2.is_open("127.0.0.1", slow.port)
    time.sleep(0.6)
    before = slow.connections
    assert reader2.fetch("127.0.0.1", slow.port, 0.2) is None
    assert slow.connections == before + 1
    assert reader2.is_open("127.0.0.1", slow.port)
