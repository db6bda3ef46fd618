"""The shipped mmlu benchmark gives lm-evaluation-harness's numbers, with lm_eval's own MMLU YAML.

lm_eval runs its `mmlu/default/_default_template_yaml` (and the per-subject description of its
`mmlu_<subject>.yaml`), pointed at the staged subset in tests/data/mmlu (dev split for the first_n
few-shot examples); kubetune runs an EvalJob task `{benchmark: mmlu}` over the same files. Each
choice's log-likelihood agrees within 1e-4 and acc is equal, zero-shot and 5-shot, and with the tiny
model's chat template applied (lm-eval's `apply_chat_template=True`: the subject line as the system turn,
the examples as user/assistant turns or, without `fewshot_as_multiturn`, in one user turn).
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


def _lm_eval_mmlu(
    model_dir: Path, tmp_path: Path, num_fewshot: int, contexts: list[str] | None = None, **options: Any
) -> tuple[list[list[float]], float]:
    """lm_eval's MMLU task per subject over the staged files; log-likelihoods in file order, acc of all
    (`contexts` receives each question's context as lm_eval scored it)."""
    contexts = [] if contexts is None else contexts
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
    results = run_lm_eval(model_dir, tasks, tmp_path, **options)
    loglikelihoods: list[list[float]] = []
    correct = 0
    for subject in subjects:
        samples = sorted(results["samples"][f"kt_mmlu_{subject}"], key=lambda s: s["doc_id"])
        loglikelihoods += [[float(resp[0]) for resp in s["filtered_resps"]] for s in samples]
        correct += sum(s["acc"] for s in samples)
        contexts.extend(s["arguments"][0][0] for s in samples)
    return loglikelihoods, correct / len(loglikelihoods)


def _kubetune_mmlu(
    model_dir: Path, tmp_path: Path, num_fewshot: int, prompts: list[str] | None = None, **extra: Any
) -> tuple[list[list[float]], float]:
    spec = EvalJobSpec.model_validate(
        {
            **extra,
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
    chat = "chat-template" if extra.get("chatTemplate", {}).get("apply") else "no-chat-template"
    assert f"{num_fewshot}-shot" in outcome.signatures["accuracy"]
    assert chat in outcome.signatures["accuracy"]
    if prompts is not None:
        prompts.extend(outcome.model.prompts["mmlu"])
    return outcome.model.choice_loglikelihoods["mmlu"], outcome.task_scores["mmlu"]["accuracy"]["model"][
        "value"
    ]


def _assert_same(ours: tuple[list[list[float]], float], theirs: tuple[list[list[float]], float]) -> None:
    (ours_ll, ours_acc), (theirs_ll, theirs_acc) = ours, theirs
    assert len(ours_ll) == len(theirs_ll) == 30
    for row, (mine, reference) in enumerate(zip(ours_ll, theirs_ll, strict=True)):
        assert len(mine) == 4
        assert mine == pytest.approx(reference, abs=1e-4), f"row {row + 1}"
    assert ours_acc == pytest.approx(theirs_acc, abs=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("num_fewshot", [0, 5])
def test_mmlu_benchmark_equals_lm_eval_mmlu_yaml(
    tiny_model_dir: Path, tmp_path: Path, num_fewshot: int
) -> None:
    theirs = _lm_eval_mmlu(tiny_model_dir, tmp_path, num_fewshot)
    _assert_same(_kubetune_mmlu(tiny_model_dir, tmp_path, num_fewshot), theirs)


@pytest.mark.slow
@pytest.mark.parametrize("multiturn", [True, False])
def test_mmlu_with_chat_template_equals_lm_eval_apply_chat_template(
    tiny_model_dir: Path, tmp_path: Path, multiturn: bool
) -> None:
    contexts: list[str] = []
    theirs = _lm_eval_mmlu(
        tiny_model_dir, tmp_path, 3, contexts, apply_chat_template=True, fewshot_as_multiturn=multiturn
    )
    prompts: list[str] = []
    ours = _kubetune_mmlu(
        tiny_model_dir,
        tmp_path,
        3,
        prompts,
        chatTemplate={"apply": True, "fewshotAsMultiturn": multiturn},
    )
    _assert_same(ours, theirs)
    assert prompts == contexts  # the very same text, through the chat template
    assert all(p.startswith("<|system|>The following") and p.endswith("<|assistant|>") for p in prompts)
    assert all(p.count("<|user|>") == (4 if multiturn else 1) for p in prompts)
    # The chat template changes the numbers: the same questions scored as plain text differ.
    plain_ll, _ = _kubetune_mmlu(tiny_model_dir, tmp_path / "plain", 3)
    flat = [(a, b) for q, p in zip(ours[0], plain_ll, strict=True) for a, b in zip(q, p, strict=True)]
    assert max(abs(a - b) for a, b in flat) > 1e-2
