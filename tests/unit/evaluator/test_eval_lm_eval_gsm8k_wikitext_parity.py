"""The shipped gsm8k and wikitext benchmarks give lm-evaluation-harness's numbers, with its own YAMLs.

lm_eval's gsm8k/gsm8k.yaml (5-shot from the train file, until 'Question:', 256 tokens, strict-match) and
wikitext/wikitext.yaml (its detokenizer, words and bytes of the page before detokenization) are included
unchanged by tasks that point their dataset at local JSONL files of made-up rows; kubetune scores the same
files as `{benchmark: gsm8k}` / `{benchmark: wikitext}` tasks on the same tiny model. GSM8K: the same
generations (cut at the stops), extracted answers and exact_match, also through the tiny model's chat
template (lm_eval's `apply_chat_template=True`: the same prompt texts); wikitext: every page's
log-likelihood and the three perplexity aggregates within 1e-4 relative.
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


def _gsm8k_row(rng: random.Random) -> dict[str, Any]:
    a, b = rng.randint(1, 50), rng.randint(1, 50)
    return {
        "question": f"Tom has {a} apples and buys {b}. How many?",
        "answer": f"{a} + {b} = {a + b}\n#### {a + b}",
    }


def _wikitext_row(rng: random.Random) -> dict[str, Any]:
    pieces = [" = Title = \n"] + [
        " ".join(
            rng.choice(["The", "cat", "@-@", "@,@", "@.@", ",", ".", "(", ")", "'s", "N", "\n"])
            for _ in range(40)
        )
        for _ in range(rng.randint(1, 3))
    ]
    return {"page": " ".join(pieces)}


def _write(directory: Path, split: str, rows: list[dict[str, Any]]) -> Path:
    path = directory / f"{split}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _lm_eval(
    model_dir: Path, source: str, name: str, files: dict[str, Path], tmp_path: Path, **options: Any
) -> Any:
    task = {
        "include": str(lm_eval_tasks_root() / source),
        "task": name,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(path) for split, path in files.items()}},
    }
    results = run_lm_eval(model_dir, {name: task}, tmp_path, **options)
    return results


def _kubetune(model_dir: Path, benchmark: str, test: Path, tmp_path: Path, **extra: Any) -> Any:
    spec = {
        "model": {"uri": str(model_dir)},
        "dataset": {"uri": str(test)},
        "generation": {"batchSize": 8},
        "output": {"uri": str(tmp_path / "out")},
        **extra,
    }
    spec["tasks"] = [{"name": benchmark, "benchmark": benchmark, **spec.pop("task", {})}]
    return run_eval(EvalJobSpec.model_validate(spec))


@pytest.mark.slow
@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat-template"])
def test_gsm8k_benchmark_equals_lm_evals_gsm8k_yaml(
    varied_model_dir: Path, tmp_path: Path, chat: bool
) -> None:
    rng = random.Random(8)
    files = {
        "test": _write(tmp_path, "test", [_gsm8k_row(rng) for _ in range(12)]),
        "train": _write(tmp_path, "train", [_gsm8k_row(rng) for _ in range(8)]),
    }
    options = {"apply_chat_template": True, "fewshot_as_multiturn": True} if chat else {}
    results = _lm_eval(varied_model_dir, "gsm8k/gsm8k.yaml", "kt_gsm8k", files, tmp_path, **options)
    samples = sorted(
        (s for s in results["samples"]["kt_gsm8k"] if s["filter"] == "strict-match"),
        key=lambda s: s["doc_id"],
    )
    outcome = _kubetune(
        varied_model_dir,
        "gsm8k",
        files["test"],
        tmp_path,
        metrics=["exact_match"],
        fewshot={"numFewshot": 5},
        task={"fewshotUri": str(files["train"])},
        chatTemplate={"apply": chat},
    )
    assert outcome.model.prompts["gsm8k"] == [s["arguments"][0][0] for s in samples]
    assert all(("<|assistant|>" in p) is chat for p in outcome.model.prompts["gsm8k"])
    assert outcome.model.generations["gsm8k"] == [s["resps"][0][0] for s in samples]
    assert outcome.model.predictions["gsm8k"] == [s["filtered_resps"][0] for s in samples]
    ours = outcome.task_scores["gsm8k"]["exactMatch"]["model"]["value"]
    assert ours == pytest.approx(results["results"]["kt_gsm8k"]["exact_match,strict-match"], abs=1e-12)
    assert len({len(g) for g in outcome.model.generations["gsm8k"]}) > 1  # the stops cut some short
    assert ("chat-template(fewshot multiturn)" in outcome.signatures["exact_match"]) is chat


@pytest.mark.slow
def test_wikitext_benchmark_equals_lm_evals_wikitext_yaml(varied_model_dir: Path, tmp_path: Path) -> None:
    rng = random.Random(9)
    rows = [_wikitext_row(rng) for _ in range(6)]
    files = {split: _write(tmp_path, split, rows) for split in ("train", "validation", "test")}
    results = _lm_eval(varied_model_dir, "wikitext/wikitext.yaml", "kt_wikitext", files, tmp_path)
    samples = sorted(results["samples"]["kt_wikitext"], key=lambda s: s["doc_id"])
    outcome = _kubetune(varied_model_dir, "wikitext", files["test"], tmp_path, metrics=["perplexity"])
    ours = outcome.model.document_loglikelihoods["wikitext"]
    assert ours == pytest.approx([float(s["resps"][0][0]) for s in samples], rel=1e-4)
    scores = results["results"]["kt_wikitext"]
    for theirs, mine in (
        ("word_perplexity", "wordPerplexity"),
        ("byte_perplexity", "bytePerplexity"),
        ("bits_per_byte", "bitsPerByte"),
    ):
        value = outcome.task_scores["wikitext"][mine]["model"]["value"]
        assert value == pytest.approx(scores[f"{theirs},none"], rel=1e-4), theirs
