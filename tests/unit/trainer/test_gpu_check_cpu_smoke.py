"""bench/gpu_check.sh --cpu-smoke: every part of the GPU check but the GPU figures, as CI can run it.

The script trains the tiny model with strategy ddp and fsdp through the pods' entry point, prints the
table with the GPU figures (MFU, peak memory, the estimate's error) as n/a, and expects method qlora to
be refused on a machine without a GPU with the trainer's InvalidSpec message, not a crash.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
RUNS = ("--runs", "full-ddp", "full-fsdp", "qlora-ddp")


def test_gpu_check_cpu_smoke_runs_ddp_fsdp_and_refuses_qlora(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        # The three runs (the checkpointing, LoRA and compile variants run the same code paths that
        # test_trainer_fsdp.py and test_trainer_compile.py cover).
        [*("bash", str(ROOT / "bench" / "gpu_check.sh"), "--cpu-smoke", "--json", str(figures)), *RUNS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(figures.read_text())
    runs = {row["run"]: row for row in report["runs"]}
    assert set(runs) == {"full-ddp", "full-fsdp", "qlora-ddp"}
    for name in ("full-ddp", "full-fsdp"):
        row = runs[name]
        assert row["exitCode"] == 0 and row["steps"] == report["steps"] == 4
        assert row["tokensPerSecond"] > 0
        assert row["mfu"] is None and row["peakGpuMemoryBytes"] is None and row["estimateError"] is None
        assert row["estimatedBytes"] > 0  # the estimator's figure for a GPU, computed anyway
    # The same data, seed and steps: sharding must not change what is learnt.
    assert runs["full-fsdp"]["trainLoss"] == pytest.approx(runs["full-ddp"]["trainLoss"], rel=1e-4)
    assert runs["qlora-ddp"]["exitCode"] == 2
    assert "qlora needs an NVIDIA GPU" in runs["qlora-ddp"]["error"]
    assert report["device"] == "cpu" and report["peakBf16Flops"] is None
    # The printed table marks the GPU figures n/a.
    line = next(line for line in proc.stdout.splitlines() if line.startswith("full-fsdp"))
    assert line.count("n/a") == 3  # MFU, peak memory, estimate error
    refused = next(line for line in proc.stdout.splitlines() if line.startswith("qlora-ddp"))
    assert "not run" in refused and "InvalidSpec" in refused and "qlora needs an NVIDIA GPU" in refused
