"""S3 outages in the pod: retried with backoff for KUBETUNE_STORAGE_RETRY_SECONDS, then StorageUnreachable.

A real HTTP server that speaks just enough S3 (ListObjectsV2, HEAD, GET) is started only after the
download began, on the port the client was pointed at: until then every connection is refused, as during a
MinIO restart. The real boto3 client of kubetune_operator.data.storage talks to it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from kubetune_operator.api.contract import Reason, StorageUnreachableError, classify
from kubetune_operator.data.errors import ConfigError
from kubetune_operator.data.storage import RETRY_SECONDS_ENV, StorageOptions, download_prefix, retry_seconds

BUCKET, KEY, BODY = "models", "model/config.json", b'{"a": 1}'
DOWN_SECONDS = 2.0


class _TinyS3(BaseHTTPRequestHandler):
    listed_size = len(BODY)
    """The size the listing states; the GET always sends BODY."""

    def log_message(self, *_: object) -> None:
        pass

    def _reply(self, body: bytes, *, send_body: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"0"')
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._reply(BODY, send_body=False)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if parse_qs(url.query).get("list-type") == ["2"]:
            listing = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<Name>{BUCKET}</Name><Prefix>model/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>"
                f"<IsTruncated>false</IsTruncated><Contents><Key>{KEY}</Key><Size>{self.listed_size}</Size>"
                "</Contents></ListBucketResult>"
            )
            self._reply(listing.encode())
            return
        self._reply(BODY)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def port(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    return _free_port()


@pytest.fixture
def late_server(port: int) -> Iterator[list[ThreadingHTTPServer]]:
    """Starts serving on `port` DOWN_SECONDS from now."""
    started: list[ThreadingHTTPServer] = []

    def start_late() -> None:
        time.sleep(DOWN_SECONDS)
        server = ThreadingHTTPServer(("127.0.0.1", port), _TinyS3)
        started.append(server)
        server.serve_forever()

    threading.Thread(target=start_late, daemon=True).start()
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


def test_a_download_during_a_short_outage_waits_for_s3_and_succeeds(
    tmp_path: Path, port: int, late_server: list[ThreadingHTTPServer]
) -> None:
    began = time.monotonic()
    local = download_prefix(
        f"s3://{BUCKET}/model/", tmp_path, StorageOptions(endpoint=f"http://127.0.0.1:{port}")
    )
    elapsed = time.monotonic() - began
    assert (local / "config.json").read_bytes() == BODY
    assert late_server, "the download finished before the server was up"
    assert DOWN_SECONDS <= elapsed < DOWN_SECONDS + 10, elapsed


def test_s3_that_never_answers_fails_with_storage_unreachable_after_the_window(
    tmp_path: Path, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RETRY_SECONDS_ENV, "3")
    began = time.monotonic()
    with pytest.raises(StorageUnreachableError) as failure:
        download_prefix(
            f"s3://{BUCKET}/model/", tmp_path, StorageOptions(endpoint=f"http://127.0.0.1:{port}")
        )
    elapsed = time.monotonic() - began
    assert 3 <= elapsed < 10, elapsed
    assert classify(failure.value) is Reason.STORAGE_UNREACHABLE
    assert f"s3://{BUCKET}/model/: S3 did not answer within 3 s ({RETRY_SECONDS_ENV})" in str(failure.value)
    assert list(tmp_path.iterdir()) == []


def test_the_window_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RETRY_SECONDS_ENV, raising=False)
    assert retry_seconds() == 60
    monkeypatch.setenv(RETRY_SECONDS_ENV, "0")
    assert retry_seconds() == 0
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(RETRY_SECONDS_ENV, bad)
        with pytest.raises(ConfigError, match=RETRY_SECONDS_ENV):
            retry_seconds()


class _RewrittenS3(_TinyS3):
    """The listing says 5 bytes more than the object then holds (rewritten between list and GET)."""

    listed_size = len(BODY) + 5


def test_a_file_that_arrives_short_of_its_listed_size_is_retried_then_fails_storage_unreachable(
    tmp_path: Path, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RETRY_SECONDS_ENV, "2")
    server = ThreadingHTTPServer(("127.0.0.1", port), _RewrittenS3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        began = time.monotonic()
        with pytest.raises(StorageUnreachableError) as failure:
            download_prefix(
                f"s3://{BUCKET}/model/", tmp_path, StorageOptions(endpoint=f"http://127.0.0.1:{port}")
            )
        assert time.monotonic() - began >= 2  # retried for the window: a rewrite may settle
    finally:
        server.shutdown()
        server.server_close()
    message = str(failure.value)
    assert f"s3://{BUCKET}/{KEY}: downloaded {len(BODY)} bytes, the listing said {len(BODY) + 5}" in message
    assert classify(failure.value) is Reason.STORAGE_UNREACHABLE
