"""The judge API key goes only to the endpoint its Secret binds it to; error bodies are cut and redacted.

The judge is a real HTTP server (http.server in a thread) that records every request it receives.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from kubetune_evaluator.entrypoint import load_eval_spec_title
from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.judge.binding import endpoint_identity, judge_api_key
from kubetune_evaluator.judge.client import JudgeItem, JudgeSettings, grade_answers
from kubetune_evaluator.model_loading import LoadedModel
from kubetune_evaluator.runner import run_eval

KEY = "sk-team-b-secret-0123456789"


class RecordingJudge(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, str]]] = []
    status = 200

    def log_message(self, *_: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(dict(self.headers))
        if self.status == 200:
            body = json.dumps({"choices": [{"message": {"content": '{"rating": 7}'}}]}).encode()
        else:  # a hostile judge: echoes the request headers, then a megabyte
            body = (json.dumps(dict(self.headers)) + "x" * 1_000_000).encode()
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def judge() -> Iterator[tuple[str, type[RecordingJudge]]]:
    handler = type("Judge", (RecordingJudge,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1", handler
    server.shutdown()
    server.server_close()


def _never_load(*_: Any, **__: Any) -> LoadedModel:
    raise AssertionError("a model was loaded although the judge key is not bound to the endpoint")


def _manifest(tmp_path: Path, endpoint: str) -> Path:
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"question": "2+2?", "answer": "4"}) + "\n")
    document = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "EvalJob",
        "metadata": {"name": "judge-binding"},
        "spec": {
            "model": {"uri": str(tmp_path / "model")},
            "dataset": {"uri": str(data), "split": "all"},
            "tasks": [{"name": "qa", "templates": [{"prompt": "Q: {question}", "completion": " {answer}"}]}],
            "metrics": ["judge"],
            "judge": {"endpoint": endpoint, "model": "m", "apiKeySecret": "team-b-judge"},
            "output": {"uri": str(tmp_path / "out")},
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_key_bound_elsewhere_is_never_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, judge: tuple[str, type[RecordingJudge]]
) -> None:
    url, server = judge
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # what the operator maps from the Secret
    monkeypatch.setenv("KUBETUNE_JUDGE_KEY_ENDPOINT", "https://api.team-b.example/v1")
    spec, _ = load_eval_spec_title(_manifest(tmp_path, url))
    with pytest.raises(EvalInputError) as caught:
        run_eval(spec, load=_never_load)
    message = str(caught.value)
    assert "'team-b-judge'" in message and url in message and "https://api.team-b.example/v1" in message
    assert KEY not in message
    assert server.received == []  # the server heard nothing at all
    assert not (tmp_path / "out").exists()


def test_a_secret_without_an_endpoint_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, judge: tuple[str, type[RecordingJudge]]
) -> None:
    url, server = judge
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("KUBETUNE_JUDGE_KEY_ENDPOINT", raising=False)
    spec, _ = load_eval_spec_title(_manifest(tmp_path, url))
    with pytest.raises(EvalInputError, match="names no endpoint: add the key 'endpoint'") as caught:
        run_eval(spec, load=_never_load)
    assert KEY not in str(caught.value) and server.received == []


def test_the_bound_endpoint_gets_the_key_and_a_hostile_error_body_is_cut_and_redacted(
    monkeypatch: pytest.MonkeyPatch, judge: tuple[str, type[RecordingJudge]]
) -> None:
    url, server = judge
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("KUBETUNE_JUDGE_KEY_ENDPOINT", f"{url}/chat/completions")  # another spelling
    key = judge_api_key(url, "team-b-judge")
    settings = JudgeSettings(endpoint=url, model="m", api_key=key, max_attempts=1)
    item = JudgeItem(prompt="2+2?", reference="4", answer="4")

    [ok] = grade_answers(settings, [item])
    assert ok.score == 7.0
    assert server.received[-1]["Authorization"] == f"Bearer {KEY}"

    server.status = 400
    [failed] = grade_answers(settings, [item])
    assert failed.score is None and failed.error is not None
    assert failed.error.startswith("HTTP 400 from judge:")
    assert KEY not in failed.error and len(failed.error) < 300


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("http://judge:8000/v1", "http://JUDGE:8000/v1/", True),
        ("http://judge/v1", "http://judge:80/v1/chat/completions", True),
        ("https://judge/v1", "http://judge/v1", False),
        ("http://judge:8000/v1", "http://judge:8001/v1", False),
        ("http://judge/v1", "http://judge.evil.example/v1", False),
        ("http://judge/v1", "http://judge/v2", False),
    ],
)
def test_endpoint_identity(a: str, b: str, same: bool) -> None:
    assert (endpoint_identity(a) == endpoint_identity(b)) is same
