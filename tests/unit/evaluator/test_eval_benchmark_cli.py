"""`kubetune eval` of an EvalJob with the shipped mmlu benchmark, 5-shot, against a baseline.

The staged MMLU-format subset (tests/data/mmlu: question, subject, choices, answer; dev split for the
few-shot examples) is scored by the tiny model and a baseline with other weights; the table printed
holds accuracy with its 95% CI for both, equal to what run_eval computes for the same manifest.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from kubetune_devtools.tiny_models import build_tiny_model
from kubetune_evaluator.entrypoint import evaluate_manifest
from kubetune_operator.cli import app

DATA = Path(__file__).parents[2] / "data" / "mmlu"


@pytest.mark.slow
def test_kubetune_eval_prints_mmlu_accuracy_with_ci_for_model_and_baseline(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    model = build_tiny_model(tmp_path / "model", seed=3)
    baseline = build_tiny_model(tmp_path / "baseline", seed=4)
    manifest = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "EvalJob",
        "metadata": {"name": "mmlu-5shot"},
        "spec": {
            "model": {"uri": str(model)},
            "baseline": {"uri": str(baseline)},
            "dataset": {"uri": str(DATA / "test.jsonl")},
            "tasks": [{"name": "mmlu", "benchmark": "mmlu", "fewshotUri": str(DATA / "dev.jsonl")}],
            "metrics": ["accuracy"],
            "fewshot": {"numFewshot": 5},
            "output": {"uri": str(tmp_path / "out")},
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(manifest))

    result = CliRunner().invoke(app, ["eval", str(path)], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    (line,) = [row for row in result.output.splitlines() if re.search(r"\bmmlu\b.*\baccuracy\b", row)]
    cells = [cell.strip() for cell in line.strip("│ ").split("│")]
    assert cells[:2] == ["mmlu", "accuracy"]
    model_acc, model_ci, base_acc, base_ci = cells[2], cells[3], cells[4], cells[5]
    scores = evaluate_manifest(path, None, termination_log=None).outcome.task_scores["mmlu"]["accuracy"]
    for value, ci, entry in ((model_acc, model_ci, scores["model"]), (base_acc, base_ci, scores["baseline"])):
        assert value == f"{entry['value']:.4f}"
        assert ci == f"[{entry['low']:.4f}, {entry['high']:.4f}]"
        assert entry["low"] <= entry["value"] <= entry["high"] and entry["low"] < entry["high"]
