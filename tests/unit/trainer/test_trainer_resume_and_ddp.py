"""Exact resume after SIGTERM, and 2-process data parallelism matching 1 process at the same global batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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
from kubetune_trainer.checkpoints import list_checkpoints
from kubetune_trainer.entrypoint import run_job
from kubetune_trainer.recipe import FineTuneRecipe, PreemptedError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resume")
    return {
        "root": root,
        "model": build_tiny_model(root / "base", hidden_size=64),
        "data": write_rows(root / "letters.jsonl", reverse_task_rows(300)),
    }


def spec_for(setup: dict[str, Path], out: Path, **hp: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"maxSteps": 24, "batchSize": 8, "gradientAccumulationSteps": 2, **hp}
    spec = letter_task_spec(
        str(setup["model"]),
        str(setup["data"]),
        str(out),
        prompt="Reverse: {{ word }}\n",
        completion="{{ reversed }}",
        **settings,
    )
    spec["checkpoint"] = {"everySteps": 8, "keep": 1}
    return spec


def losses(result: dict[str, Any]) -> dict[int, float]:
    return {int(step): loss for step, loss in result["history"]}


def test_a_run_stopped_by_sigterm_resumes_exactly(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    root = setup["root"]
    whole = run_job(write_finetune_job(root / "whole.yaml", "whole", spec_for(setup, root / "whole")))
    assert whole is not None

    out = root / "stopped"
    job = write_finetune_job(root / "stopped.yaml", "stopped", spec_for(setup, out))

    # SIGTERM (what the kubelet sends on preemption / suspend) once step 10 is reported: after the periodic
    # checkpoint of step 8, deterministically (a thread watching for that checkpoint raced the next step).
    report_step, fired = FineTuneRecipe._report_step, []

    def preempt_after_step_10(self: FineTuneRecipe, **kwargs: Any) -> None:
        report_step(self, **kwargs)
        if self.state.step == 10 and not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(FineTuneRecipe, "_report_step", preempt_after_step_10)
    with pytest.raises(PreemptedError):
        run_job(job)
    saved = [c for c in list_checkpoints(str(out)) if c.complete]
    assert saved and 8 < saved[-1].step < 24  # the SIGTERM checkpoint; keep=1 pruned step 8
    assert not (out / "result.json").exists()

    resumed = run_job(job)
    assert resumed is not None
    assert resumed["metrics"]["steps"] == 24
    # Same data in the same order, no batch seen twice: the token count adds up exactly.
    assert resumed["metrics"]["tokens"] == whole["metrics"]["tokens"]
    a, b = losses(whole), losses(resumed)
    assert a.keys() == b.keys()
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-4, abs=1e-5), step
    assert resumed["metrics"]["evalLoss"] == pytest.approx(whole["metrics"]["evalLoss"], rel=1e-4)


def test_two_processes_match_one_process_at_the_same_global_batch(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    root = setup["root"]
    one = run_job(
        write_finetune_job(
            root / "one.yaml", "one", spec_for(setup, root / "one", maxSteps=12, batchSize=8, packing=True)
        )
    )
    assert one is not None
    job = write_finetune_job(
        root / "two.yaml", "two", spec_for(setup, root / "two", maxSteps=12, batchSize=4, packing=True)
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KUBETUNE_METRICS_PORT": "0"}
    # --multi_gpu on a CPU-only machine gives 2 gloo processes (`--cpu --num_processes 2` silently runs one).
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29517",
        "-m",
        "kubetune_trainer",
        "--config",
        str(job),
    ]
    proc = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((root / "two" / "result.json").read_text())
    assert '"processes": 2' in proc.stderr
    a, b = losses(one), losses(two)
    assert a.keys() == b.keys()
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-3), step
