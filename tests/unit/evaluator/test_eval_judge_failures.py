"""A failing judge endpoint is retried, then reported per sample; the run never crashes.

The endpoint is a real HTTP server (http.server in a thread) that misbehaves on purpose:
500s, non-JSON bodies, replies without a verdict, and replies slower than the timeout.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kubetune_evaluator.judge.client import JudgeItem, JudgeSettings, compare_answers, grade_answers
from kubetune_evaluator.metrics.judge_metric import score_judge_single

HITS: Counter[str] = Counter()


def _reply(content: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


class MisbehavingJudge(BaseHTTPRequestHandler):
    def log_message(self, *_: object) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        mode = self.path.split("/")[1]
        HITS[mode] += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert body["messages"][0]["role"] == "system"
        if mode == "error500":
            self._send(500, b"internal error")
        elif mode == "garbage":
            self._send(200, b"<html>not json</html>")
        elif mode == "noverdict":
            self._send(200, _reply("I think the answer is fine."))
        elif mode == "slow":
            time.sleep(1.0)
            self._send(200, _reply('{"rating": 9}'))
        elif mode == "flaky":  # fails twice, then answers
            self._send(500, b"busy") if HITS[mode] % 3 else self._send(200, _reply('{"rating": 6}'))
        elif mode == "unauthorized":
            self._send(401, b"bad key")
        elif mode == "positional":  # always prefers the answer shown first
            self._send(200, _reply('{"winner": "A"}'))

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def judge_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), MisbehavingJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _settings(url: str, mode: str, **overrides: float) -> JudgeSettings:
    options = {"timeout_s": 0.3, "max_attempts": 3, "backoff_s": 0.01, "concurrency": 2, **overrides}
    return JudgeSettings(endpoint=f"{url}/{mode}/v1", model="judge", **options)  # type: ignore[arg-type]


ITEMS = [JudgeItem(prompt="Say hi", reference="hi", answer="hello", baseline_answer="hey")] * 2


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("error500", "HTTP 500"),
        ("garbage", "JSONDecodeError"),
        ("noverdict", "no rating in judge reply"),
        ("slow", "judge timed out"),
    ],
)
def test_failures_are_retried_then_reported_per_sample(judge_url: str, mode: str, error: str) -> None:
    HITS.clear()
    outcomes = grade_answers(_settings(judge_url, mode), ITEMS)
    assert [o.score for o in outcomes] == [None, None]
    assert all(o.error is not None and error in o.error for o in outcomes), outcomes
    assert HITS[mode] == 3 * len(ITEMS)  # every sample tried max_attempts times


def test_client_errors_are_not_retried(judge_url: str) -> None:
    HITS.clear()
    outcomes = grade_answers(_settings(judge_url, "unauthorized"), ITEMS[:1])
    assert outcomes[0].error is not None and "HTTP 401" in outcomes[0].error
    assert HITS["unauthorized"] == 1


def test_flaky_endpoint_succeeds_after_retries(judge_url: str) -> None:
    HITS.clear()
    outcomes = grade_answers(_settings(judge_url, "flaky", concurrency=1), ITEMS)
    assert [o.score for o in outcomes] == [6.0, 6.0]
    assert HITS["flaky"] == 6


def test_position_bias_becomes_a_tie_in_both_orders_mode(judge_url: str) -> None:
    outcomes = compare_answers(_settings(judge_url, "positional"), ITEMS)
    assert [o.score for o in outcomes] == [0.5, 0.5]


def test_failed_samples_do_not_count_in_the_judge_score(judge_url: str) -> None:
    output = score_judge_single(_settings(judge_url, "error500", max_attempts=1), ["p"], ["r"], ["a"])
    series = output.scores["judgeScore"]
    assert len(series.per_sample) == 1 and series.per_sample[0] != series.per_sample[0]  # NaN
    assert output.notes[0] is not None and "HTTP 500" in output.notes[0]
