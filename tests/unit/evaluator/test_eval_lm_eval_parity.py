"""kubetune's multiple-choice numbers equal lm-evaluation-harness's, sample by sample.

lm_eval (from PyPI, its `hf` model) reads a YAML task over local JSONL files (`dataset_path: json`);
kubetune runs an EvalJob over the same files with the same prompt and the same tiny model. Every
choice's log-likelihood agrees within 1e-4, and acc / acc_norm are equal. The cases cover what used to
diverge: a prompt ending in a newline (all trailing whitespace moves to the continuation), choices with
their own whitespace, inputs longer than the model's context (left truncation); and few-shot prompts
drawn with the same seed, from a dev file or from the scored rows themselves (never the question itself).

lm_eval is a dev dependency; without it every test here fails (on purpose: a parity check that silently
skips would prove nothing), while the rest of the suite still runs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from lm_eval_runner import run_lm_eval

from kubetune_evaluator.runner import run_eval
from kubetune_operator.api import EvalJobSpec

WORDS = ["a", "b c", "d e f", "g", "h a", "Answer", "Copy", "c c c c", "e", "f g h a b"]
MMLU_TEXT = (
    "{{ question.strip() }}\n"
    "{% for choice in choices %}{{ 'ABCDEFGH'[loop.index0] }}. {{ choice }}\n{% endfor %}Answer:"
)


def _question_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """MMLU-style rows; some choices carry leading or trailing whitespace, some questions are long."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        choices = [rng.choice(WORDS) for _ in range(rng.randint(2, 4))]
        if i % 5 == 1:
            choices[0] = " " + choices[0]
        if i % 7 == 2:
            choices[-1] = choices[-1] + " "
        length = 40 if i % 6 == 0 else rng.randint(2, 6)
        question = "Copy: " + " ".join(rng.choice("abcdefgh") for _ in range(length))
        rows.append({"question": question, "choices": choices, "answer": rng.randrange(len(choices))})
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("parity-data")
    files = {}
    for split, (n, seed) in {"test": (48, 1), "train": (20, 2)}.items():
        files[split] = directory / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(row) + "\n" for row in _question_rows(n, seed)))
    return files


def _lm_eval_samples(
    model_dir: Path,
    data: dict[str, Path],
    tmp_path: Path,
    doc_to_text: str,
    *,
    num_fewshot: int = 0,
    fewshot_split: str = "train",
) -> tuple[list[list[float]], dict[str, float]]:
    """Per-question choice log-likelihoods (in row order) and acc/acc_norm from lm_eval itself."""
    task = {
        "task": "kubetune_parity",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data["test"]), "train": str(data["train"])}},
        "test_split": "test",
        "fewshot_split": fewshot_split,
        "num_fewshot": num_fewshot,
        "output_type": "multiple_choice",
        "doc_to_text": doc_to_text,
        "doc_to_choice": "choices",
        "doc_to_target": "answer",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
    }
    results = run_lm_eval(model_dir, {"kubetune_parity": task}, tmp_path, fewshot_random_seed=1234)
    samples = sorted(results["samples"]["kubetune_parity"], key=lambda s: s["doc_id"])
    loglikelihoods = [[float(resp[0]) for resp in sample["filtered_resps"]] for sample in samples]
    scores = results["results"]["kubetune_parity"]
    return loglikelihoods, {"acc": scores["acc,none"], "acc_norm": scores["acc_norm,none"]}


def _kubetune_samples(
    model_dir: Path,
    data: dict[str, Path],
    tmp_path: Path,
    prompt: str | None,
    *,
    num_fewshot: int = 0,
    fewshot_split: str = "train",
) -> tuple[list[list[float]], dict[str, float]]:
    spec: dict[str, Any] = {
        "model": {"uri": str(model_dir)},
        "dataset": {"uri": str(data["test"]), "split": "all"},
        "metrics": ["accuracy"],
        "generation": {"batchSize": 8},
        "output": {"uri": str(tmp_path / "out")},
    }
    if prompt is not None:
        spec["tasks"] = [{"name": "mc", "templates": [{"prompt": prompt, "completion": " {{ answer }}"}]}]
    if num_fewshot:
        spec["fewshot"] = {"numFewshot": num_fewshot, "seed": 1234, "uri": str(data[fewshot_split])}
    outcome = run_eval(EvalJobSpec.model_validate(spec))
    (task,) = outcome.tasks
    scores = outcome.task_scores[task.name]
    return outcome.model.choice_loglikelihoods[task.name], {
        "acc": scores["accuracy"]["model"]["value"],
        "acc_norm": scores["accuracyNorm"]["model"]["value"],
    }


def _assert_same(
    ours: tuple[list[list[float]], dict[str, float]], theirs: tuple[list[list[float]], dict[str, float]]
) -> None:
    our_ll, our_scores = ours
    their_ll, their_scores = theirs
    assert len(our_ll) == len(their_ll) == 48
    for row, (mine, reference) in enumerate(zip(our_ll, their_ll, strict=True)):
        assert mine == pytest.approx(reference, abs=1e-4), f"row {row + 1}"
    assert our_scores == pytest.approx(their_scores, abs=1e-12)


@pytest.mark.slow
def test_mmlu_prompt_matches_lm_eval(tiny_model_dir: Path, data: dict[str, Path], tmp_path: Path) -> None:
    theirs = _lm_eval_samples(tiny_model_dir, data, tmp_path, MMLU_TEXT)
    ours = _kubetune_samples(tiny_model_dir, data, tmp_path, None)
    _assert_same(ours, theirs)


@pytest.mark.slow
def test_prompt_ending_in_a_newline_matches_lm_eval(
    tiny_model_dir: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    template = "{{ question }}\nAnswer:\n"
    theirs = _lm_eval_samples(tiny_model_dir, data, tmp_path, template)
    ours = _kubetune_samples(tiny_model_dir, data, tmp_path, template)
    _assert_same(ours, theirs)


@pytest.mark.slow
def test_left_truncation_matches_lm_eval(
    short_context_model_dir: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    theirs = _lm_eval_samples(short_context_model_dir, data, tmp_path, MMLU_TEXT)
    ours = _kubetune_samples(short_context_model_dir, data, tmp_path, None)
    _assert_same(ours, theirs)


@pytest.mark.slow
def test_fewshot_from_a_dev_file_matches_lm_eval(
    tiny_model_dir: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    theirs = _lm_eval_samples(tiny_model_dir, data, tmp_path, MMLU_TEXT, num_fewshot=3)
    ours = _kubetune_samples(tiny_model_dir, data, tmp_path, None, num_fewshot=3)
    _assert_same(ours, theirs)


@pytest.mark.slow
def test_fewshot_from_the_scored_rows_matches_lm_eval(
    tiny_model_dir: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    """The pool is the test split itself: both draw n + 1 and drop the question."""
    theirs = _lm_eval_samples(tiny_model_dir, data, tmp_path, MMLU_TEXT, num_fewshot=2, fewshot_split="test")
    ours = _kubetune_samples(tiny_model_dir, data, tmp_path, None, num_fewshot=2, fewshot_split="test")
    _assert_same(ours, theirs)
