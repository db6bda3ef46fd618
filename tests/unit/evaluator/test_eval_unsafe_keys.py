"""`kubetune eval` of an S3 model prefix whose keys climb out of the folder: a clear error, nothing written.

AWS S3 stores keys such as `model/../../escape`; MinIO (the local stack's S3) rejects object names with
`..` or `//`, so this test stands up a minimal S3 endpoint over HTTP that lists such keys, and the real
boto3 client of the evaluator talks to it. The endpoint records every request: the evaluator
must list the prefix and then fetch nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

import pytest
import yaml
from typer.testing import CliRunner

from kubetune_operator.cli import app

BUCKET = "models"


class _ListingOnlyS3(BaseHTTPRequestHandler):
    keys: ClassVar[list[str]] = []
    requests: ClassVar[list[str]] = []

    def log_message(self, *_: object) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.requests.append(f"HEAD {self.path}")
        self._reply(404)

    def do_GET(self) -> None:
        self.requests.append(f"GET {self.path}")
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path.strip("/") == BUCKET and query.get("list-type") == ["2"]:
            prefix = query.get("prefix", [""])[0]
            contents = "".join(
                f"<Contents><Key>{escape(k)}</Key><Size>5</Size></Contents>"
                for k in self.keys
                if k.startswith(prefix)
            )
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<Name>{BUCKET}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(self.keys)}</KeyCount>"
                f"<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"
            )
            self._reply(200, body.encode())
            return
        self._reply(200, b"owned")  # what an attacker's object would hold


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_ListingOnlyS3]]:
    handler = type("Handler", (_ListingOnlyS3,), {"keys": [], "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "off")
    yield handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("bad_key", ["model/../../escape", "model//abs/path", "model/sub/../../../escape"])
def test_eval_refuses_a_model_prefix_with_a_key_outside_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_endpoint: type[_ListingOnlyS3], bad_key: str
) -> None:
    s3_endpoint.keys = ["model/config.json", bad_key, "model/tokenizer.json"]
    scratch = tmp_path / "scratch" / "tmp"  # the evaluator's download folder is made under it
    scratch.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"question": "2+2?", "answer": "4"}) + "\n")
    manifest = tmp_path / "eval.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubetune.io/v1alpha1",
                "kind": "EvalJob",
                "metadata": {"name": "escape"},
                "spec": {
                    "model": {"uri": f"s3://{BUCKET}/model/"},
                    "dataset": {"uri": str(data), "split": "all"},
                    "tasks": [
                        {"name": "qa", "templates": [{"prompt": "Q: {question}", "completion": " {answer}"}]}
                    ],
                    "metrics": ["exact_match"],
                    "output": {"uri": str(tmp_path / "out")},
                },
            }
        )
    )
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))

    result = CliRunner().invoke(app, ["eval", str(manifest)])

    assert result.exit_code != 0
    assert f"refusing object key {bad_key!r}" in result.output
    assert s3_endpoint.requests and all("list-type=2" in r for r in s3_endpoint.requests), (
        s3_endpoint.requests
    )
    after = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    # Nothing anywhere around the download folder: no escape, no output, no partial download.
    assert [p for p in after if p not in before and not p.startswith("scratch/tmp/kubetune-model-")] == []
    assert not any(p.is_file() for p in scratch.rglob("*"))
