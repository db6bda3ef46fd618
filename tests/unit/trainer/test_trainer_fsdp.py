"""`strategy: fsdp` on CPU (gloo, FSDP2): the same loss curve as 1 process and as 2-process DDP at the same
global batch, for full fine-tuning and LoRA; sharded (DCP) checkpoints that resume exactly, also on another
number of processes.

Tolerance: losses per step within rel. 1e-4 (FSDP reduce-scatters where DDP all-reduces, so fp32 sums are
taken in another order; measured differences are ~1e-6). What CPU cannot show (bf16 mixed precision, NCCL,
QLoRA) is covered by bench/gpu_check.sh.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from safetensors.torch import load_file

from kubetune_devtools.tiny_models import (
    build_tiny_model,
    letter_task_spec,
    reverse_task_rows,
    write_finetune_job,
    write_rows,
)
from kubetune_trainer import checkpoints
from kubetune_trainer.checkpoints import list_checkpoints
from kubetune_trainer.entrypoint import run_job
from kubetune_trainer.recipe import PreemptedError
from kubetune_trainer.train_state import CheckpointFormatError

pytestmark = pytest.mark.slow
REL = 1e-4
GLOBAL_BATCH = 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fsdp")
    return {
        "root": root,
        "model": build_tiny_model(root / "base", hidden_size=64),
        "data": write_rows(root / "letters.jsonl", reverse_task_rows(300)),
    }


def write_job(
    setup: dict[str, Path], name: str, *, strategy: str, processes: int, method: str = "full", **hp: Any
) -> Path:
    settings: dict[str, Any] = {"maxSteps": 8, "batchSize": GLOBAL_BATCH // processes, **hp}
    spec = letter_task_spec(
        str(setup["model"]),
        str(setup["data"]),
        str(setup["root"] / name),
        prompt="Reverse: {{ word }}\n",
        completion="{{ reversed }}",
        method=method,
        **settings,
    )
    spec["distributed"] = {"strategy": strategy}
    # 9 test examples: 5 on rank 0 (2 batches of 4), 4 on rank 1 (1 batch), so under fsdp rank 1 runs a
    # batch it ignores to keep the all-gathers in step (recipe.evaluate).
    spec["dataset"]["split"] = {"validation": 0.05, "test": 0.03, "seed": 1}
    spec["checkpoint"] = {"everySteps": 4, "keep": 1}
    if method == "lora":
        # No dropout: its draws differ with the number of processes, which is not what is compared here.
        spec["lora"] = {"dropout": 0.0, "targetModules": ["q_proj", "v_proj", "down_proj"]}
    return write_finetune_job(setup["root"] / f"{name}.yaml", name, spec)


def launch_two(job: Path, port: int) -> subprocess.Popen[str]:
    """2 gloo processes, as a pod runs them (`--multi_gpu` on CPU: see test_trainer_resume_and_ddp.py)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KUBETUNE_METRICS_PORT": "0"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(port), "-m", "kubetune_trainer", "--config", str(job),
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_two(job: Path, port: int) -> dict[str, Any]:
    proc = launch_two(job, port)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert '"processes": 2' in stderr
    result: dict[str, Any] = json.loads((job.parent / job.stem / "result.json").read_text())
    return result


def curve(result: dict[str, Any]) -> dict[int, float]:
    return {int(step): loss for step, loss in result["history"]}


def assert_same_curve(a: dict[str, Any], b: dict[str, Any]) -> None:
    ca, cb = curve(a), curve(b)
    assert ca.keys() == cb.keys() and len(ca) >= 8
    for step in ca:
        assert cb[step] == pytest.approx(ca[step], rel=REL), step


@pytest.mark.parametrize(("method", "port"), [("full", 29531), ("lora", 29533)])
def test_two_fsdp_processes_match_one_process_and_two_ddp_processes(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch, method: str, port: int
) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    one = run_job(write_job(setup, f"one-{method}", strategy="ddp", processes=1, method=method))
    assert one is not None
    # With activation checkpointing per decoder layer (recomputed inside each FSDP unit): the same curve.
    fsdp_job = write_job(
        setup, f"fsdp-{method}", strategy="fsdp", processes=2, method=method, gradientCheckpointing=True
    )
    fsdp = run_two(fsdp_job, port)
    assert (one["metrics"]["strategy"], fsdp["metrics"]["strategy"]) == ("ddp", "fsdp")
    assert_same_curve(one, fsdp)
    if method == "lora":
        # Full fine-tuning with 2 DDP processes equals 1 process in test_trainer_resume_and_ddp.py; each
        # launch costs ~15 s of imports on 2 cores, so that one is not repeated here.
        ddp = run_two(write_job(setup, f"ddp-{method}", strategy="ddp", processes=2, method=method), port + 1)
        assert_same_curve(ddp, fsdp)
    assert fsdp["metrics"]["evalLoss"] == pytest.approx(one["metrics"]["evalLoss"], rel=REL)
    assert fsdp["metrics"]["testLoss"] == pytest.approx(one["metrics"]["testLoss"], rel=REL)
    assert fsdp["metrics"]["tokens"] == one["metrics"]["tokens"]
    # The exported model (gathered from the shards) equals the one-process model.
    weights = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    a = load_file(str(setup["root"] / f"one-{method}" / weights))
    b = load_file(str(setup["root"] / f"fsdp-{method}" / weights))
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max() < 1e-4, key
    # The sharded checkpoint: one shard file per process, JSON beside it, nothing else.
    step = setup["root"] / f"fsdp-{method}" / "checkpoints" / "step-4"
    assert sorted(p.name for p in (step / "dcp").iterdir()) == [
        "shard-00001-model-00001-of-00001.safetensors",
        "shard-00002-model-00001-of-00001.safetensors",
    ]
    assert json.loads((step / "train-state.json").read_text()) == {"format": "kubetune-train-state/fsdp-1"}


def test_fsdp_stopped_by_sigterm_resumes_exactly_also_on_another_number_of_processes(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 processes stopped by SIGTERM after the first checkpoint; the sharded checkpoint then resumes on 1
    process (the same global batch) to the same curve as an uninterrupted run."""
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    whole = run_job(write_job(setup, "whole", strategy="fsdp", processes=1, maxSteps=24))
    assert whole is not None

    stopped = write_job(setup, "stopped", strategy="fsdp", processes=2, maxSteps=24)
    proc = launch_two(stopped, 29537)
    first = setup["root"] / "stopped" / "checkpoints" / "step-4" / "manifest.json"
    deadline = time.monotonic() + 240
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    for child in psutil.Process(proc.pid).children(recursive=True):
        child.send_signal(signal.SIGTERM)  # every rank, as when the kubelet stops the pod
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0, stderr[-2000:]
    saved = [c for c in list_checkpoints(str(setup["root"] / "stopped")) if c.complete]
    assert saved and 4 <= saved[-1].step < 24, stderr[-2000:]
    assert not (setup["root"] / "stopped" / "result.json").exists()

    # Resume on ONE process: batchSize 8 keeps the global batch of 2 x 4.
    resumed_job = write_job(setup, "stopped", strategy="fsdp", processes=1, maxSteps=24)
    resumed = run_job(resumed_job)
    assert resumed is not None and resumed["metrics"]["steps"] == 24
    assert resumed["metrics"]["tokens"] == whole["metrics"]["tokens"]
    assert_same_curve(whole, resumed)
    assert resumed["metrics"]["evalLoss"] == pytest.approx(whole["metrics"]["evalLoss"], rel=REL)


def test_fsdp_one_process_sigterm_resume_and_strategy_switch_refused(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    whole = run_job(write_job(setup, "lora-whole", strategy="fsdp", processes=1, method="lora", maxSteps=12))
    assert whole is not None
    job = write_job(setup, "lora-stopped", strategy="fsdp", processes=1, method="lora", maxSteps=12)

    manifest = setup["root"] / "lora-stopped" / "checkpoints" / "step-4" / "manifest.json"
    with monkeypatch.context() as patch:
        # SIGTERM as soon as the step-4 checkpoint is sealed: the recipe stops at the next step boundary.

        seal = checkpoints.seal_checkpoint

        def seal_then_stop(*args: Any, **kwargs: Any) -> tuple[str, str]:
            sealed = seal(*args, **kwargs)
            if manifest.exists():
                os.kill(os.getpid(), signal.SIGTERM)
            return sealed

        patch.setattr(checkpoints, "seal_checkpoint", seal_then_stop)
        with pytest.raises(PreemptedError):
            run_job(job)
    resumed = run_job(job)
    assert resumed is not None
    assert_same_curve(whole, resumed)

    # The same output with strategy ddp: refused with a message naming both strategies, not misread.
    switched = write_job(setup, "lora-switch", strategy="ddp", processes=1, method="lora", maxSteps=12)
    shutil.copytree(
        setup["root"] / "lora-stopped" / "checkpoints", setup["root"] / "lora-switch" / "checkpoints"
    )
    with pytest.raises(CheckpointFormatError, match="written with strategy fsdp, this run uses ddp"):
        run_job(switched)
