"""The shipped mmlu benchmark gives lm-evaluation-harness's numbers, with lm_eval's own MMLU YAML.

lm_eval runs its `mmlu/default/_default_template_yaml` (and the per-subject description of its
`mmlu_<subject>.yaml`), pointed at the staged subset in tests/data/mmlu (dev split for the first_n
few-shot examples); kubetune runs an EvalJob task `{benchmark: mmlu}` over the same files. Each
choice's log-likelihood agrees within 1e-4 and acc is equal, zero-shot and 5-shot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from lm_eval_runner import lm_eval_tasks_root, run_lm_eval

from kubetune_evaluator.runner import run_eval
from kubetune_operator.api import EvalJobSpec

DATA = Path(__file__).parents[2] / "data" / "mmlu"


def _rows(split: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / f"{split}.jsonl").read_text().splitlines()]


def _lm_eval_mmlu(model_dir: Path, tmp_path: Path, num_fewshot: int) -> tuple[list[list[float]], float]:
    """lm_eval's MMLU task per subject over the staged files; log-likelihoods in file order, acc of all."""
    tasks_root = lm_eval_tasks_root() / "mmlu" / "default"
    template = yaml.safe_load((tasks_root / "_default_template_yaml").read_text())
    subjects = list(dict.fromkeys(row["subject"] for row in _rows("test")))
    tasks: dict[str, dict[str, Any]] = {}
    for subject in subjects:
        files = {}
        for split in ("test", "dev"):
            files[split] = tmp_path / f"{subject}-{split}.jsonl"
            rows = [row for row in _rows(split) if row["subject"] == subject]
            files[split].write_text("".join(json.dumps(row) + "\n" for row in rows))
        own = yaml.safe_load((tasks_root / f"mmlu_{subject}.yaml").read_text())
        task = {
            **template,
            "task": f"kt_mmlu_{subject}",
            "description": own["description"],
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {split: str(path) for split, path in files.items()}},
            "num_fewshot": num_fewshot,
        }
        tasks[f"kt_mmlu_{subject}"] = task
    results = run_lm_eval(model_dir, tasks, tmp_path)
    loglikelihoods: list[list[float]] = []
    correct = 0
    for subject in subjects:
        samples = sorted(results["samples"][f"kt_mmlu_{subject}"], key=lambda s: s["doc_id"])
        loglikelihoods += [[float(resp[0]) for resp in s["filtered_resps"]] for s in samples]
        correct += sum(s["acc"] for s in samples)
    return loglikelihoods, correct / len(loglikelihoods)


def _kubetune_mmlu(model_dir: Path, tmp_path: Path, num_fewshot: int) -> tuple[list[list[float]], float]:
    spec = EvalJobSpec.model_validate(
        {
            "model": {"uri": str(model_dir)},
            "dataset": {"uri": str(DATA / "test.jsonl")},
            "tasks": [{"name": "mmlu", "benchmark": "mmlu", "fewshotUri": str(DATA / "dev.jsonl")}],
            "metrics": ["accuracy"],
            "fewshot": {"numFewshot": num_fewshot},
            "generation": {"batchSize": 8},
            "output": {"uri": str(tmp_path / "out")},
        }
    )
    outcome = run_eval(spec)
    return outcome.model.choice_loglikelihoods["mmlu"], outcome.task_scores["mmlu"]["accuracy"]["model"][
        "value"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("num_fewshot", [0, 5])
def test_mmlu_benchmark_equals_lm_eval_mmlu_yaml(
    tiny_model_dir: Path, tmp_path: Path, num_fewshot: int
) -> None:
    theirs_ll, theirs_acc = _lm_eval_mmlu(tiny_model_dir, tmp_path, num_fewshot)
    ours_ll, ours_acc = _kubetune_mmlu(tiny_model_dir, tmp_path, num_fewshot)
    assert len(ours_ll) == len(theirs_ll) == 30
    for row, (mine, reference) in enumerate(zip(ours_ll, theirs_ll, strict=True)):
        assert len(mine) == 4
        assert mine == pytest.approx(reference, abs=1e-4), f"row {row + 1}"
    assert ours_acc == pytest.approx(theirs_acc, abs=1e-12)
