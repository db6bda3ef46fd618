"""A tiny model really learns held-out instruction rows: full fine-tuning, then LoRA on top of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from kubetune_devtools.generation import exact_match, greedy_completions, load_for_inference
from kubetune_devtools.tiny_models import (
    build_tiny_model,
    letter_task_spec,
    reverse_task_rows,
    write_finetune_job,
    write_rows,
)
from kubetune_operator.data.digest import directory_digest
from kubetune_operator.data.split import manifest_indices, read_split_manifest
from kubetune_trainer.entrypoint import run_job

pytestmark = pytest.mark.slow


def held_out_exact_match(output: Path, base: Path, field: str) -> tuple[float, float]:
    """(exact match of the base model, of the tuned model) on the held-out test rows of a run."""
    rows = [json.loads(line) for line in (output / "split" / "test.jsonl").read_text().splitlines()]
    scores = []
    for model_dir in (base, output):
        model, tokenizer = load_for_inference(model_dir, base)
        predictions = greedy_completions(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens=16)
        scores.append(exact_match(predictions, [r["completion"] for r in rows]))
    assert rows and all(field and r["completion"].strip() for r in rows)
    return scores[0], scores[1]


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Full fine-tuning of a random tiny Llama on "Copy: a b c" -> "a b c" (~300 steps)."""
    monkey = pytest.MonkeyPatch()
    monkey.setenv("KUBETUNE_METRICS_PORT", "0")
    root = tmp_path_factory.mktemp("copy-run")
    model = build_tiny_model(root / "base")
    data = write_rows(root / "letters.jsonl", reverse_task_rows(600, max_len=4))
    spec = letter_task_spec(
        str(model), str(data), str(root / "out"), prompt="Copy: {{ word }}\nAnswer:", completion=" {{ word }}"
    )
    result = run_job(write_finetune_job(root / "job.yaml", "copy", spec))
    monkey.undo()
    assert result is not None
    return {"base": model, "out": root / "out", "result": result, "data": data, "root": root}


def test_full_finetuning_learns_the_held_out_rows(copy_run: dict[str, Any]) -> None:
    base_em, tuned_em = held_out_exact_match(copy_run["out"], copy_run["base"], "word")
    assert base_em <= 0.05
    assert tuned_em >= 0.9
    result = copy_run["result"]
    assert result["metrics"]["evalLoss"] < 0.2 and result["history"][0][1] > 3.0
    # The reported digest is the digest of what was exported, recomputable by anyone.
    assert result["output"]["digest"] == directory_digest(
        copy_run["out"], exclude=_not_exported(copy_run["out"])
    )
    card = (copy_run["out"] / "README.md").read_text()
    assert "base_model:" in card and "Copy: {{ word }}" in card and "evalLoss" in card
    manifest = read_split_manifest(str(copy_run["out"]))
    test_rows = [
        json.loads(line)["row"] for line in (copy_run["out"] / "split/test.jsonl").read_text().splitlines()
    ]
    assert manifest_indices(manifest, "letters", "test") == test_rows and len(test_rows) == 60


def _not_exported(out: Path) -> tuple[str, ...]:
    return tuple(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and (p.name == "result.json" or p.parts[len(out.parts)] in {"split", "checkpoints"})
    )


def test_lora_learns_a_new_task_and_changes_only_adapter_weights(
    copy_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    # A "pretrained" base that copies; the adapters must make it answer every letter's successor instead.
    # (On a randomly initialised base LoRA cannot learn: frozen random embeddings and norms cap the logits.)
    base = copy_run["out"]
    spec = letter_task_spec(
        str(base),
        str(copy_run["data"]),
        str(tmp_path / "out"),
        method="lora",
        prompt="Copy: {{ word }}\nAnswer:",
        completion=" {{ shifted }}",
        learningRate="5e-3",
        epochs=8,
    )
    spec["lora"] = {
        "r": 16,
        "alpha": 32,
        "dropout": 0.0,
        "merge": True,
        "targetModules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    }
    run_job(write_finetune_job(tmp_path / "job.yaml", "shift", spec))
    out = tmp_path / "out"
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    base_em, tuned_em = held_out_exact_match(out, base, "shifted")
    assert base_em <= 0.05
    assert tuned_em >= 0.9
    # deferred: torch cost seconds to import; collecting other tests skips them
    from safetensors.torch import load_file  # noqa: PLC0415

    adapter = load_file(out / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert any(float(t.abs().sum()) > 0 for n, t in adapter.items() if "lora_B" in n)
    base_weights = load_file(base / "model.safetensors")
    merged = load_file(out / "merged" / "model.safetensors")
    changed = [n for n in base_weights if n in merged and not torch.equal(base_weights[n], merged[n])]
    # Merging folds adapters into the targeted projections only; embeddings and norms stay as they were.
    assert changed and all(n.split(".")[-2] in spec["lora"]["targetModules"] for n in changed)
