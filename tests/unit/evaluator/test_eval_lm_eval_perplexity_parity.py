"""kubetune's perplexity of plain text equals lm-evaluation-harness's `loglikelihood_rolling`.

lm_eval (from PyPI, its `hf` model) runs a YAML task with `output_type: loglikelihood_rolling` over a local
JSONL file of texts; kubetune runs an EvalJob with the `perplexity` metric over the same file and the same
tiny model. Every document's log-likelihood and word_perplexity, byte_perplexity and bits_per_byte agree
within 1e-4 relative: with the model's own context (each text in one window) and with a 32-token context,
where most texts span several rolling windows. Texts hold newlines, runs of spaces and multi-byte
characters, so words, bytes and characters all differ.

lm_eval is a dev dependency; without it every test here fails (on purpose, as in the other parity tests).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from lm_eval_runner import run_lm_eval

from kubetune_evaluator.runner import run_eval
from kubetune_operator.api import EvalJobSpec

WORDS = ["review", "rate", "the", "Reverse", "copy", "été", "naïve", "—", "42", "a,b", "x"]


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 60 if i % 3 == 0 else 12))]
        separators = [rng.choice([" ", " ", "  ", "\n", " \n\n"]) for _ in words]
        texts.append("".join(w + s for w, s in zip(words, separators, strict=True)).rstrip(" "))
    return texts


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("perplexity-data") / "test.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in _texts(24, 7)))
    return path


def _lm_eval_run(model_dir: Path, data: Path, tmp_path: Path) -> tuple[list[float], dict[str, float]]:
    task = {
        "task": "kubetune_perplexity_parity",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "loglikelihood_rolling",
        "doc_to_text": "",
        "doc_to_target": "text",
        "metric_list": [
            {"metric": "word_perplexity"},
            {"metric": "byte_perplexity"},
            {"metric": "bits_per_byte"},
        ],
    }
    results = run_lm_eval(model_dir, {"kubetune_perplexity_parity": task}, tmp_path)
    samples = sorted(results["samples"]["kubetune_perplexity_parity"], key=lambda s: s["doc_id"])
    loglik = [float(sample["resps"][0][0]) for sample in samples]
    scores = results["results"]["kubetune_perplexity_parity"]
    return loglik, {
        "wordPerplexity": scores["word_perplexity,none"],
        "bytePerplexity": scores["byte_perplexity,none"],
        "bitsPerByte": scores["bits_per_byte,none"],
    }


def _kubetune_run(model_dir: Path, data: Path, tmp_path: Path) -> tuple[list[float], dict[str, float]]:
    spec = {
        "model": {"uri": str(model_dir)},
        "dataset": {"uri": str(data), "split": "all", "format": "text"},
        "metrics": ["perplexity"],
        "generation": {"batchSize": 8},
        "output": {"uri": str(tmp_path / "out")},
    }
    outcome = run_eval(EvalJobSpec.model_validate(spec))
    (task,) = outcome.tasks
    assert task.kind == "text"
    scores = outcome.task_scores[task.name]
    return outcome.model.document_loglikelihoods[task.name], {
        name: scores[name]["model"]["value"] for name in ("wordPerplexity", "bytePerplexity", "bitsPerByte")
    }


def _assert_same(
    ours: tuple[list[float], dict[str, float]], theirs: tuple[list[float], dict[str, float]]
) -> None:
    assert len(ours[0]) == len(theirs[0]) == 24
    for row, (mine, reference) in enumerate(zip(ours[0], theirs[0], strict=True)):
        assert mine == pytest.approx(reference, rel=1e-4), f"row {row + 1}"
    assert ours[1] == pytest.approx(theirs[1], rel=1e-4)
    # Words, bytes and nats differ, so the three scores are not one number in disguise.
    assert len({round(v, 3) for v in ours[1].values()}) == 3


@pytest.mark.slow
def test_perplexity_matches_lm_eval(tiny_model_dir: Path, data: Path, tmp_path: Path) -> None:
    _assert_same(_kubetune_run(tiny_model_dir, data, tmp_path), _lm_eval_run(tiny_model_dir, data, tmp_path))


@pytest.mark.slow
def test_perplexity_over_rolling_windows_matches_lm_eval(
    short_context_model_dir: Path, data: Path, tmp_path: Path
) -> None:
    # deferred: transformers cost seconds to import; collecting other tests skips them
    from transformers import AutoTokenizer  # noqa: PLC0415

    tokenizer = AutoTokenizer.from_pretrained(short_context_model_dir)
    lengths = [len(tokenizer(text)["input_ids"]) for text in _texts(24, 7)]
    assert sum(length > 32 for length in lengths) >= 6  # several windows for these
    ours = _kubetune_run(short_context_model_dir, data, tmp_path)
    _assert_same(ours, _lm_eval_run(short_context_model_dir, data, tmp_path))
