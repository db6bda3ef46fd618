"""End to end (local paths): train a tiny model with the trainer, then score it against its base.

The tuned model must beat its base on the task it learned, on exactly the FineTuneJob's held-out
rows; the tasks it never saw (a copy task and an MMLU-style multiple-choice set) show the paired
delta with its confidence interval; every output (samples.jsonl, results.json, report.html,
termination message, Prometheus gauges) is checked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune_devtools.tiny_models import build_tiny_model, reverse_task_rows
from kubetune_evaluator.entrypoint import evaluate_manifest
from kubetune_evaluator.prometheus_metrics import EvalGauges
from kubetune_operator.api import FineTuneJob, parse_manifest

REVERSE = {"prompt": "Reverse: {word}\nAnswer:", "completion": " {reversed}"}
COPY = {"prompt": "Copy: {word}\nAnswer:", "completion": " {word}"}
MMLU = [
    {"question": "Reverse: a b", "choices": ["b a", "a b"], "answer": "A"},
    {"question": "Reverse: c d e", "choices": ["c d e", "e d c", "d c e"], "answer": "B"},
    {"question": "Reverse: f g", "choices": ["g f", "f f"], "answer": 0},
    {"question": "Reverse: h a b", "choices": ["a b h", "h b a", "b a h"], "answer": "b a h"},
    {"question": "Which letter is first in the alphabet?", "choices": ["c", "a", "h"], "answer": "B"},
    {"question": "Reverse: a c", "choices": ["a c", "c a"], "answer": 1},
]


def _write_yaml(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _train(tmp_path: Path, base: Path, data: Path) -> Path:
    # deferred: the trainer (torch) cost seconds to import; collecting other tests skips them
    from kubetune_trainer.recipe import run_training  # noqa: PLC0415

    tuned = tmp_path / "tuned"
    job = parse_manifest(
        {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": "reverse"},
            "spec": {
                "model": {"uri": str(base)},
                "dataset": {"uri": str(data), "split": {"validation": 0.05, "test": 0.1, "seed": 42}},
                "tasks": [{"name": "reverse", "templates": [REVERSE]}],
                "method": "full",
                "hyperparameters": {
                    "epochs": 3,
                    "learningRate": "3e-3",
                    "batchSize": 16,
                    "maxSeqLength": 64,
                    "packing": False,
                    "warmupRatio": 0.0,
                },
                "output": {"uri": str(tuned)},
            },
        }
    )
    assert isinstance(job, FineTuneJob)
    run_training(job)
    return tuned


@pytest.mark.slow
def test_forgetting_check_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # deferred: torch cost seconds to import; collecting other tests skips them
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "off")
    base = build_tiny_model(tmp_path / "base")
    data = tmp_path / "reverse.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in reverse_task_rows(300)))
    mmlu = tmp_path / "mmlu.jsonl"
    mmlu.write_text("".join(json.dumps(row) + "\n" for row in MMLU))
    tuned = _train(tmp_path, base, data)

    manifest = _write_yaml(
        tmp_path / "eval.yaml",
        {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "EvalJob",
            "metadata": {"name": "reverse-eval"},
            "spec": {
                "model": {"uri": str(tuned)},
                "baseline": {"uri": str(base)},
                "dataset": {"uri": str(data), "split": "test"},
                "tasks": [
                    {"name": "reverse", "templates": [REVERSE]},
                    {"name": "copy", "dataset": {"uri": str(data)}, "templates": [COPY]},
                    {
                        "name": "mmlu",
                        "dataset": {"uri": str(mmlu)},
                        "templates": [{"prompt": "Question: {question}\nAnswer:", "completion": " {answer}"}],
                    },
                ],
                "metrics": ["rouge", "bleu", "exact_match", "accuracy"],
                "generation": {"maxNewTokens": 12, "batchSize": 8, "maxSamples": 30},
                "thresholds": {"rougeL": 0.3},
                "output": {"uri": str(tmp_path / "eval-out")},
            },
        },
    )
    termination_log = tmp_path / "termination-log"
    termination_log.touch()  # mounted by Kubernetes in a pod
    gauges = EvalGauges()
    run = evaluate_manifest(manifest, termination_log=termination_log, gauges=gauges)
    outcome = run.outcome

    # Exactly the FineTuneJob's held-out rows; tasks it did not train on use every row (up to maxSamples).
    split = json.loads((tuned / "split" / "manifest.json").read_text())
    test_rows = split["tasks"][0]["rows"]["test"]
    reverse = next(task for task in outcome.tasks if task.name == "reverse")
    assert reverse.rows == test_rows and len(test_rows) == 30
    assert next(task for task in outcome.tasks if task.name == "copy").rows == list(range(30))

    scores = outcome.task_scores
    tuned_gain = scores["reverse"]["rougeL"]["delta"]
    assert scores["reverse"]["rougeL"]["model"]["value"] > scores["reverse"]["rougeL"]["baseline"]["value"]
    assert tuned_gain["low"] > 0, tuned_gain  # significantly better on its own task
    for task, score in (("copy", "rougeL"), ("copy", "bleu"), ("mmlu", "accuracy"), ("mmlu", "accuracyNorm")):
        delta = scores[task][score]["delta"]
        assert delta["low"] <= delta["value"] <= delta["high"], (task, score, delta)
        assert delta["value"] == pytest.approx(
            scores[task][score]["model"]["value"] - scores[task][score]["baseline"]["value"]
        )
    assert outcome.verdict == "Passed", outcome.reasons

    out = tmp_path / "eval-out"
    results = json.loads((out / "results.json").read_text())
    trained = json.loads((tuned / "result.json").read_text())
    assert results["model"]["digest"] == trained["output"]["digest"]
    assert results["summary"]["signatures"]["bleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert results["tasks"]["mmlu"]["samples"] == 6

    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 30 + 30 + 6
    first = samples[0]
    assert {"prompt", "references", "prediction", "baselinePrediction", "scores", "baselineScores"} <= set(
        first
    )
    assert len(next(s for s in samples if s["task"] == "mmlu")["loglikelihoods"]) == 2

    report = (out / "report.html").read_text()
    assert report.count("<svg") >= 4 and "Worst samples" in report
    assert not re.search(r"""(src|href)=["']https?:""", report)  # self-contained

    summary = json.loads(termination_log.read_text())["result"]  # the workload contract's envelope
    assert len(termination_log.read_bytes()) < 4096
    assert summary["verdict"] == "Passed" and summary["reportUri"].endswith("report.html")
    assert summary["results"]["delta"]["rougeL"] == pytest.approx(
        (tuned_gain["value"] + scores["copy"]["rougeL"]["delta"]["value"]) / 2, abs=1e-5
    )

    labels = {"task": "reverse", "score": "rougeL", "system": "model"}
    exported = gauges.registry.get_sample_value("kubetune_eval_score", labels)
    assert exported == pytest.approx(scores["reverse"]["rougeL"]["model"]["value"])
    assert gauges.registry.get_sample_value("kubetune_eval_verdict_passed") == 1.0
