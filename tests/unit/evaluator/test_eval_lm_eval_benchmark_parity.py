"""The shipped arc, boolq and hellaswag benchmarks give lm-evaluation-harness's numbers, with its own YAMLs.

Each lm_eval task YAML (arc/arc_easy.yaml, super_glue/boolq/default.yaml, hellaswag/hellaswag.yaml with
its utils.process_docs) is included unchanged by a task that only points its dataset at local JSONL files
of made-up rows in the release's columns; kubetune scores the same files as a `{benchmark: ...}` task.
Every choice's log-likelihood agrees within 1e-4 and acc (and acc_norm) are equal, 0-shot and 2-shot
(examples drawn from the train file with lm-eval's default seed), and 2-shot through the tiny model's chat
template (lm-eval's `apply_chat_template=True`, with and without `fewshot_as_multiturn`): the very same
prompt texts as well.
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


def _lm_eval(
    model_dir: Path, benchmark: str, files: dict[str, Path], tmp_path: Path, shots: int, **options: Any
) -> Any:
    """lm_eval's log-likelihoods and scores; `options` go to simple_evaluate (the chat template)."""
    source, _, _, metrics = CASES[benchmark]
    task = {
        "include": str(lm_eval_tasks_root() / source),
        "task": f"kt_{benchmark}",
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(path) for split, path in files.items()}},
    }
    results = run_lm_eval(model_dir, {f"kt_{benchmark}": task}, tmp_path, num_fewshot=shots, **options)
    samples = sorted(results["samples"][f"kt_{benchmark}"], key=lambda s: s["doc_id"])
    loglikelihoods = [[float(resp[0]) for resp in sample["filtered_resps"]] for sample in samples]
    scores = results["results"][f"kt_{benchmark}"]
    contexts = [sample["arguments"][0][0] for sample in samples]
    return loglikelihoods, {OUR_NAMES[m]: scores[f"{m},none"] for m in metrics}, contexts


def _kubetune(
    model_dir: Path, benchmark: str, files: dict[str, Path], tmp_path: Path, shots: int, **extra: Any
) -> Any:
    """kubetune's log-likelihoods, scores and the prompts the model scored; `extra`: more spec fields."""
    scored_split, metrics = CASES[benchmark][1], CASES[benchmark][3]
    spec = EvalJobSpec.model_validate(
        {
            **extra,
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
    return (
        outcome.model.choice_loglikelihoods[benchmark],
        {OUR_NAMES[m]: scores[OUR_NAMES[m]]["model"]["value"] for m in metrics},
        outcome.model.prompts.get(benchmark),
        outcome.signatures["accuracy"],
    )


def _assert_same_numbers(ours_ll: list[list[float]], theirs_ll: list[list[float]]) -> None:
    assert len(ours_ll) == len(theirs_ll) == 24
    for row, (mine, reference) in enumerate(zip(ours_ll, theirs_ll, strict=True)):
        assert mine == pytest.approx(reference, abs=1e-4), f"row {row + 1}"


@pytest.mark.slow
@pytest.mark.parametrize("shots", [0, 2])
@pytest.mark.parametrize("benchmark", sorted(CASES))
def test_benchmark_equals_lm_evals_own_yaml(
    tiny_model_dir: Path, tmp_path: Path, benchmark: str, shots: int
) -> None:
    files = _files(tmp_path, benchmark, CASES[benchmark][1])
    theirs_ll, theirs, _ = _lm_eval(tiny_model_dir, benchmark, files, tmp_path, shots)
    ours_ll, ours, _, signature = _kubetune(tiny_model_dir, benchmark, files, tmp_path, shots)
    _assert_same_numbers(ours_ll, theirs_ll)
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert "no-chat-template" in signature


@pytest.mark.slow
@pytest.mark.parametrize("multiturn", [True, False])
@pytest.mark.parametrize("benchmark", sorted(CASES))
def test_benchmark_with_chat_template_equals_lm_eval_apply_chat_template(
    tiny_model_dir: Path, tmp_path: Path, benchmark: str, multiturn: bool
) -> None:
    files = _files(tmp_path, benchmark, CASES[benchmark][1])
    theirs_ll, theirs, contexts = _lm_eval(
        tiny_model_dir,
        benchmark,
        files,
        tmp_path,
        2,
        apply_chat_template=True,
        fewshot_as_multiturn=multiturn,
    )
    chat = {"apply": True, "fewshotAsMultiturn": multiturn}
    ours_ll, ours, prompts, signature = _kubetune(
        tiny_model_dir, benchmark, files, tmp_path, 2, chatTemplate=chat
    )
    assert prompts == contexts  # the very same text, through the chat template
    assert all(p.startswith("<|user|>") and p.endswith("<|assistant|>") for p in prompts)
    assert all(p.count("<|user|>") == (3 if multiturn else 1) for p in prompts)
    _assert_same_numbers(ours_ll, theirs_ll)
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert ("fewshot multiturn" if multiturn else "fewshot single turn") in signature
    # The chat template changes the numbers: the same questions scored as plain text differ.
    plain_ll, _, _, _ = _kubetune(tiny_model_dir, benchmark, files, tmp_path / "plain", 2)
    flat = [(a, b) for q, p in zip(ours_ll, plain_ll, strict=True) for a, b in zip(q, p, strict=True)]
    assert max(abs(a - b) for a, b in flat) > 1e-2
