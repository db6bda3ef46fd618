"""The shipped arc, boolq and hellaswag benchmarks give lm-evaluation-harness's numbers, with its own YAMLs.

Each lm_eval task YAML (arc/arc_easy.yaml, super_glue/boolq/default.yaml, hellaswag/hellaswag.yaml with
its utils.process_docs) is included unchanged by a task that only points its dataset at local JSONL files
of made-up rows in the release's columns; kubetune scores the same files as a `{benchmark: ...}` task.
Every choice's log-likelihood agrees within 1e-4 and acc (and acc_norm) are equal, 0-shot and 2-shot
(examples drawn from the train file with lm-eval's default seed).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from lm_eval_runner import lm_eval_tasks_root, run_lm_eval

from kubetune_evaluator.runner import run_eval
from kubetune_operator.api import EvalJobSpec

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "red", "blue", "quick", "slow", "it"]


def _text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def _arc(rng: random.Random) -> dict[str, Any]:
    n = rng.randint(3, 5)
    labels = list("ABCDE"[:n]) if rng.random() < 0.7 else [str(i + 1) for i in range(n)]
    return {
        "question": _text(rng, 3, 12) + "?",
        "choices": {"text": [_text(rng, 1, 4) for _ in range(n)], "label": labels},
        "answerKey": rng.choice(labels),
    }


def _boolq(rng: random.Random) -> dict[str, Any]:
    return {"passage": _text(rng, 10, 30) + ".", "question": _text(rng, 3, 8), "label": rng.randrange(2)}


def _hellaswag(rng: random.Random) -> dict[str, Any]:
    ctx_a = _text(rng, 4, 12) + (" [title] " + _text(rng, 2, 4) if rng.random() < 0.3 else "")
    ctx_b = _text(rng, 1, 3)
    return {
        "activity_label": _text(rng, 1, 2).capitalize(),
        "ctx_a": ctx_a,
        "ctx_b": ctx_b,
        "ctx": f"{ctx_a} {ctx_b}",
        "endings": [_text(rng, 2, 8) + (" [step]" if rng.random() < 0.2 else "") for _ in range(4)],
        "label": str(rng.randrange(4)),
    }


# benchmark: (lm-eval YAML, the split lm-eval scores, row maker, lm-eval metrics)
CASES = {
    "arc": ("arc/arc_easy.yaml", "test", _arc, ("acc", "acc_norm")),
    "boolq": ("super_glue/boolq/default.yaml", "validation", _boolq, ("acc",)),
    "hellaswag": ("hellaswag/hellaswag.yaml", "validation", _hellaswag, ("acc", "acc_norm")),
}
OUR_NAMES = {"acc": "accuracy", "acc_norm": "accuracyNorm"}


def _files(directory: Path, benchmark: str, scored_split: str) -> dict[str, Path]:
    make = CASES[benchmark][2]
    rng = random.Random(benchmark)
    files = {}
    for split, n in ((scored_split, 24), ("train", 8)):
        files[split] = directory / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(make(rng)) + "\n" for _ in range(n)))
    return files


def _lm_eval(model_dir: Path, benchmark: str, files: dict[str, Path], tmp_path: Path, shots: int) -> Any:
    source, _, _, metrics = CASES[benchmark]
    task = {
        "include": str(lm_eval_tasks_root() / source),
        "task": f"kt_{benchmark}",
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(path) for split, path in files.items()}},
    }
    results = run_lm_eval(model_dir, {f"kt_{benchmark}": task}, tmp_path, num_fewshot=shots)
    samples = sorted(results["samples"][f"kt_{benchmark}"], key=lambda s: s["doc_id"])
    loglikelihoods = [[float(resp[0]) for resp in sample["filtered_resps"]] for sample in samples]
    scores = results["results"][f"kt_{benchmark}"]
    return loglikelihoods, {OUR_NAMES[m]: scores[f"{m},none"] for m in metrics}


def _kubetune(model_dir: Path, benchmark: str, files: dict[str, Path], tmp_path: Path, shots: int) -> Any:
    scored_split, metrics = CASES[benchmark][1], CASES[benchmark][3]
    spec = EvalJobSpec.model_validate(
        {
            "model": {"uri": str(model_dir)},
            "dataset": {"uri": str(files[scored_split])},
            "tasks": [{"name": benchmark, "benchmark": benchmark, "fewshotUri": str(files["train"])}],
            "metrics": ["accuracy"],
            "fewshot": {"numFewshot": shots},
            "generation": {"batchSize": 8},
            "output": {"uri": str(tmp_path / "out")},
        }
    )
    outcome = run_eval(spec)
    scores = outcome.task_scores[benchmark]
    return outcome.model.choice_loglikelihoods[benchmark], {
        OUR_NAMES[m]: scores[OUR_NAMES[m]]["model"]["value"] for m in metrics
    }


@pytest.mark.slow
@pytest.mark.parametrize("shots", [0, 2])
@pytest.mark.parametrize("benchmark", sorted(CASES))
def test_benchmark_equals_lm_evals_own_yaml(
    tiny_model_dir: Path, tmp_path: Path, benchmark: str, shots: int
) -> None:
    files = _files(tmp_path, benchmark, CASES[benchmark][1])
    theirs_ll, theirs = _lm_eval(tiny_model_dir, benchmark, files, tmp_path, shots)
    ours_ll, ours = _kubetune(tiny_model_dir, benchmark, files, tmp_path, shots)
    assert len(ours_ll) == len(theirs_ll) == 24
    for row, (mine, reference) in enumerate(zip(ours_ll, theirs_ll, strict=True)):
        assert mine == pytest.approx(reference, abs=1e-4), f"row {row + 1}"
    assert ours == pytest.approx(theirs, abs=1e-12)
