"""Which strategy a job runs with, and `method: qlora` on a machine without a GPU (a clear InvalidSpec at
`kubetune train`, before any data is read, not a crash). Fast: no model is trained here."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from kubetune_devtools.tiny_models import write_finetune_job
from kubetune_operator.api import FineTuneJobSpec
from kubetune_operator.api.contract import EXIT_PREEMPTED
from kubetune_operator.cli import app
from kubetune_operator.data.errors import ConfigError
from kubetune_trainer.entrypoint import run_job
from kubetune_trainer.sharding import resolve_strategy


def spec(method: str = "full", strategy: str = "auto") -> FineTuneJobSpec:
    return FineTuneJobSpec.model_validate(
        {
            "model": {"uri": "/nowhere/model"},
            "dataset": {"uri": "/nowhere/data.jsonl"},
            "method": method,
            "distributed": {"strategy": strategy},
            "resources": {"gpusPerNode": 1},
            "output": {"uri": "/nowhere/out"},
        }
    )


@pytest.mark.parametrize(
    ("method", "strategy", "fits", "expected"),
    [
        ("full", "auto", None, "ddp"),  # unknown (CPU, unreadable config): nothing says sharding is needed
        ("full", "auto", True, "ddp"),
        ("full", "auto", False, "fsdp"),
        ("lora", "auto", False, "fsdp"),
        ("qlora", "auto", False, "ddp"),  # a 4-bit base is replicated, never sharded
        ("full", "ddp", False, "ddp"),  # an explicit choice stands (the preflight reports the misfit)
        ("lora", "fsdp", True, "fsdp"),
    ],
)
def test_resolve_strategy(method: str, strategy: str, fits: bool | None, expected: str) -> None:
    assert resolve_strategy(spec(method, strategy), fits_one_device=fits) == expected


def test_fsdp_with_qlora_is_refused() -> None:
    with pytest.raises(ConfigError, match="fsdp is not supported with method: qlora"):
        resolve_strategy(spec("qlora", "fsdp"), fits_one_device=None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_qlora_without_a_gpu_is_invalid_spec_at_kubetune_train(tmp_path: Path) -> None:
    # Paths that do not exist: the refusal comes before any data or model is read.
    job_spec: dict[str, Any] = spec("qlora").model_dump(mode="json", by_alias=True, exclude_none=True)
    job_spec["output"] = {"uri": str(tmp_path / "out")}
    job = write_finetune_job(tmp_path / "qlora.yaml", "qlora", job_spec)
    with pytest.raises(ConfigError, match=r"spec.method: qlora needs an NVIDIA GPU .* use method: lora"):
        run_job(job)
    result = CliRunner().invoke(app, ["train", str(job)])
    assert result.exit_code == 2, result.output
    assert "qlora needs an NVIDIA GPU" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_flex_attention_without_a_gpu_is_invalid_spec_at_kubetune_train(tmp_path: Path) -> None:
    job_spec: dict[str, Any] = spec("lora").model_dump(mode="json", by_alias=True, exclude_none=True)
    job_spec["hyperparameters"]["attention"] = "flex"
    job_spec["output"] = {"uri": str(tmp_path / "out")}
    job = write_finetune_job(tmp_path / "flex.yaml", "flex", job_spec)
    with pytest.raises(ConfigError, match=r"attention: flex needs an NVIDIA GPU .* use attention: sdpa"):
        run_job(job)
    assert not (tmp_path / "out").exists()


def test_flex_attention_needs_gpus_at_admission() -> None:
    with pytest.raises(ValueError, match="attention: flex needs GPUs"):
        FineTuneJobSpec.model_validate(
            {
                "model": {"uri": "/m"},
                "dataset": {"uri": "/d.jsonl"},
                "hyperparameters": {"attention": "flex"},
                "output": {"uri": "/o"},
            }
        )


def test_sigterm_before_training_ends_the_pod_entry_point_at_once(tmp_path: Path) -> None:
    """As a container's PID 1, Python ignores SIGTERM without a handler: a suspend or delete while the
    trainer waits for S3 would hold the pod for its whole grace period. Here the model's S3 endpoint refuses
    every connection (the storage layer retries for a minute); SIGTERM ends the process with the preempted
    exit code within seconds."""
    with socket.socket() as probe:  # a port nothing listens on: every connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    job_spec: dict[str, Any] = spec("full").model_dump(mode="json", by_alias=True, exclude_none=True)
    job_spec["model"] = {"uri": "s3://models/base/"}
    job_spec["storage"] = {"endpoint": f"http://127.0.0.1:{port}"}
    job_spec["output"] = {"uri": str(tmp_path / "out")}
    job = write_finetune_job(tmp_path / "term.yaml", "term", job_spec)
    env = {**os.environ, "KUBETUNE_STORAGE_RETRY_SECONDS": "120", "KUBETUNE_METRICS_PORT": "off"}
    env.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "CUDA_VISIBLE_DEVICES": ""})
    command = [sys.executable, "-m", "kubetune_trainer", "--config", str(job)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The handler is set a second after start; by 10 s the process retries S3 (its window: 120 s).
        time.sleep(10)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_PREEMPTED, stderr[-2000:]
    assert time.monotonic() - sent < 10
    assert "stopped by SIGTERM before training started" in stderr
    assert not (tmp_path / "out").exists()
