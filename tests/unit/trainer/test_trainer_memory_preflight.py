"""Memory preflight (issue 18): `kubetune train --dry-run` on a Llama-7B-shaped config.json with no weights,
and the trainer's refusal (InsufficientMemory) before any weight is loaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kubetune_devtools.tiny_models import LLAMA_7B_CONFIG as LLAMA_7B
from kubetune_operator.api import FineTuneJob, parse_manifest
from kubetune_operator.api.contract import InsufficientMemoryError, Reason
from kubetune_operator.cli import app
from kubetune_operator.data.storage import MODEL_WEIGHT_SUFFIXES
from kubetune_trainer.preflight import check_before_loading, check_fits, read_model_shape


def llama_7b_without_weights(tiny_model_dir: Path, target: Path) -> Path:
    """The tiny model's tokenizer beside a Llama-7B config.json: what a dry run downloads of a 7B model."""
    target.mkdir(parents=True)
    for path in tiny_model_dir.iterdir():
        if path.is_file() and not path.name.endswith(MODEL_WEIGHT_SUFFIXES) and path.name != "config.json":
            shutil.copy(path, target / path.name)
    (target / "config.json").write_text(json.dumps(LLAMA_7B))
    return target


def write_job(tmp_path: Path, model: Path, **spec: Any) -> Path:
    data = tmp_path / "data.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": f"Say {i}:", "completion": f" {i}"}) + "\n" for i in range(20))
    )
    manifest = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "seven-b"},
        "spec": {
            "model": {"uri": str(model)},
            "dataset": {"uri": str(data)},
            "output": {"uri": str(tmp_path / "out")},
            **spec,
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def table_rows(output: str) -> dict[tuple[str, str], list[str]]:
    """(strategy, method) -> the row's cells, from rich's table (cells split on its vertical bars)."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│")[1:-1]]
        if len(cells) == 9 and cells[1] in ("full", "lora", "qlora"):
            rows[(cells[0].removesuffix(" *"), cells[1])] = cells
    return rows


def test_dry_run_on_a_7b_config_prints_per_gpu_estimates_and_what_fits_80gb(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    model = llama_7b_without_weights(tiny_model_dir, tmp_path / "llama-7b")
    job = write_job(
        tmp_path,
        model,
        method="full",
        hyperparameters={"batchSize": 1, "maxSeqLength": 1024},
        resources={"nodes": 1, "processesPerNode": 8, "gpusPerNode": 8},
    )
    result = CliRunner().invoke(app, ["train", "--dry-run", str(job)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    assert set(rows) == {(s, m) for s in ("ddp", "fsdp") for m in ("full", "lora", "qlora")}, result.output
    # Full + AdamW + DDP: 16 bytes per parameter (4 + 4 + 8) of 6.74B parameters, plus activations.
    weights, gradients, optimizer = (float(c) for c in rows[("ddp", "full")][2:5])
    assert weights + gradients + optimizer == pytest.approx(16 * 6.738e9 / 2**30, rel=0.01)
    assert rows[("ddp", "full")][-1] == "no" and rows[("fsdp", "full")][-1] == "yes"
    assert rows[("ddp", "lora")][-1] == "yes" and rows[("ddp", "qlora")][-1] == "yes"
    assert rows[("fsdp", "qlora")][-1] == "n/a (unsupported)"  # the trainer replicates a 4-bit base
    assert "6.74B parameters, 8 process(es)" in result.output
    assert "an 80 GB GPU (assumed: no gpuMemory given and no GPU here)" in result.output
    assert "distributed.strategy auto -> fsdp" in result.output
    assert not (tmp_path / "out").exists()


def test_dry_run_names_the_options_when_the_given_gpu_is_too_small(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    model = llama_7b_without_weights(tiny_model_dir, tmp_path / "llama-7b")
    job = write_job(
        tmp_path,
        model,
        method="lora",
        distributed={"strategy": "ddp"},
        hyperparameters={"batchSize": 1, "maxSeqLength": 512},
        resources={"gpusPerNode": 1, "gpuMemory": "80Gi"},
    )
    result = CliRunner().invoke(
        app, ["train", "--dry-run", "--gpu-memory", "12Gi", str(job)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "Checked against 12.0 GiB per GPU: --gpu-memory 12Gi" in result.output
    assert "This job does not fit; would fit: method: qlora" in result.output
    rows = table_rows(result.output)
    assert rows[("ddp", "lora")][0] == "ddp *" and rows[("ddp", "lora")][-1] == "no"


def spec_of(**spec: Any) -> FineTuneJob:
    job = parse_manifest(
        {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": "seven-b"},
            "spec": {
                "model": {"uri": "s3://models/llama-7b/"},
                "dataset": {"uri": "s3://data/x.jsonl"},
                "output": {"uri": "s3://models/out/"},
                **spec,
            },
        }
    )
    assert isinstance(job, FineTuneJob)
    return job


def test_check_fits_refuses_with_insufficient_memory_and_the_options(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_7B))
    shape, why = read_model_shape(tmp_path)
    assert shape is not None, why
    job = spec_of(method="full", distributed={"strategy": "ddp"}, resources={"gpusPerNode": 1})
    with pytest.raises(InsufficientMemoryError) as refused:
        check_fits(job.spec, shape, 80 * 2**30, "the GPU (80.0 GiB)")
    message = str(refused.value)
    assert refused.value.reason is Reason.INSUFFICIENT_MEMORY
    assert message.startswith("memory estimate per GPU ")
    assert "exceeds the 80.0 GiB of the GPU (80.0 GiB)" in message
    assert "would fit: method: lora and hyperparameters.gradientCheckpointing: true; method: qlora" in message
    fits = spec_of(method="lora", resources={"gpusPerNode": 1}, hyperparameters={"batchSize": 4})
    assert check_fits(fits.spec, shape, 80 * 2**30, "the GPU").total < 80 * 2**30


def test_auto_strategy_becomes_fsdp_when_ddp_does_not_fit(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_7B))
    shape, _ = read_model_shape(tmp_path)
    assert shape is not None
    job = spec_of(method="full", resources={"nodes": 2, "processesPerNode": 8, "gpusPerNode": 8})
    assert check_fits(job.spec, shape, 80 * 2**30, "the GPU").setup.strategy == "fsdp"


def test_a_model_the_estimator_cannot_read_is_not_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 768}))
    shape, why = read_model_shape(tmp_path)
    assert shape is None and "hidden_size" in why


def test_trainer_check_before_loading_refuses_on_a_gpu_that_is_too_small(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_7B))
    job = spec_of(method="lora", resources={"gpusPerNode": 1})
    with pytest.raises(InsufficientMemoryError, match=r"exceeds the 16.0 GiB of this GPU \(16.0 GiB\)"):
        check_before_loading(job.spec, tmp_path, 16 * 2**30)
    passed = check_before_loading(job.spec, tmp_path, 80 * 2**30)
    assert passed is not None and passed.setup.method == "lora"
    # The strategy the trainer resolved is the one checked.
    full = spec_of(method="full", resources={"nodes": 2, "processesPerNode": 8, "gpusPerNode": 8})
    with pytest.raises(InsufficientMemoryError, match="ddp over 16 process"):
        check_before_loading(full.spec, tmp_path, 80 * 2**30, strategy="ddp")
    sharded = check_before_loading(full.spec, tmp_path, 80 * 2**30, strategy="fsdp")
    assert sharded is not None and sharded.setup.strategy == "fsdp"


def test_trainer_check_before_loading_does_nothing_on_cpu_or_unknown_models(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_7B))
    job = spec_of(method="full", resources={"gpusPerNode": 1})
    assert check_before_loading(job.spec, tmp_path, None) is None  # CPU: no device memory
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert check_before_loading(job.spec, tmp_path, 1) is None
