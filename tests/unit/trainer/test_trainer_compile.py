"""`hyperparameters.compile`: the compiled decoder layers train to the same losses as eager ones.

On CPU here (Inductor's C++ backend, tiny Llama, 1 process, under ddp and fsdp); the speed-up it is for is
measured on GPU by bench/gpu_check.sh (docs/trainer.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubetune_devtools.tiny_models import (
    build_tiny_model,
    letter_task_spec,
    reverse_task_rows,
    write_finetune_job,
    write_rows,
)
from kubetune_trainer.entrypoint import run_job

pytestmark = pytest.mark.slow


def job(root: Path, model: Path, data: Path, name: str, *, strategy: str, compile_layers: bool) -> Path:
    spec = letter_task_spec(
        str(model),
        str(data),
        str(root / name),
        prompt="Reverse: {{ word }}\n",
        completion="{{ reversed }}",
        maxSteps=4,
        batchSize=4,
        packing=True,
        compile=compile_layers,
    )
    spec["distributed"] = {"strategy": strategy}
    return write_finetune_job(root / f"{name}.yaml", name, spec)


def test_compiled_layers_train_like_eager_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    model = build_tiny_model(tmp_path / "base", hidden_size=64)
    data = write_rows(tmp_path / "letters.jsonl", reverse_task_rows(120))
    results: dict[str, Any] = {}
    for strategy in ("ddp", "fsdp"):
        for compiled in (False, True):
            name = f"{strategy}-{'compiled' if compiled else 'eager'}"
            result = run_job(job(tmp_path, model, data, name, strategy=strategy, compile_layers=compiled))
            assert result is not None
            assert result["metrics"]["compiledLayers"] == (2 if compiled else 0)  # the tiny model's layers
            results[name] = result
    for strategy in ("ddp", "fsdp"):
        eager, compiled = results[f"{strategy}-eager"], results[f"{strategy}-compiled"]
        assert [s for s, _ in compiled["history"]] == [s for s, _ in eager["history"]]
        for (_, a), (_, b) in zip(eager["history"], compiled["history"], strict=True):
            # Inductor fuses and reorders fp32 arithmetic: equal to rounding, not bit for bit.
            assert b == pytest.approx(a, rel=1e-4)
        assert compiled["metrics"]["testLoss"] == pytest.approx(eager["metrics"]["testLoss"], rel=1e-4)
