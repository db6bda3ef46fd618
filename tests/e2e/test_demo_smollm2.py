"""The default `kubetune demo` (pretrained SmolLM2-135M-Instruct, LoRA on the target task, EvalJob on the
target and the general task against the base) on the local stack, with fewer scored samples: what it must
show, read from results.json (not from the printed text)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from rich.console import Console

from kubetune_devtools.demo.flow import DemoOptions, run_demo
from kubetune_devtools.demo.plan import RECIPES, with_size
from kubetune_devtools.demo.stdlib_docs import GENERAL_TASK, TARGET_TASK
from kubetune_devtools.devstack.stack import LocalStack

# ~10 min on an idle 2-core machine; the session-wide 900 s limit is too short under load.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(2700)]
# The default recipe (same rows, training, prompts, generation settings), 16 instead of 24 samples per task.
RECIPE = with_size(RECIPES["smollm2"], eval_samples=16)


def test_default_demo_learns_the_target_and_measures_the_general_task(
    stack: LocalStack, tmp_path: Path
) -> None:
    namespace = f"t-demo-{secrets.token_hex(3)}"
    options = DemoOptions(
        model="smollm2", recipe=RECIPE, output_dir=tmp_path, namespace=namespace, timeout_seconds=2400
    )

    outcome = run_demo(options, Console(width=140, record=True))

    (run,) = outcome.runs
    assert run.method == "lora" and run.finetune_status["phase"] == "Succeeded"
    results = json.loads(run.results_copy.read_text())
    target = results["tasks"][TARGET_TASK]["scores"][RECIPE.gate_score]
    general = results["tasks"][GENERAL_TASK]["scores"][RECIPE.general_score]
    # The target task is learned: the paired 95% CI of tuned - base lies above 0.
    assert target["delta"]["low"] > 0
    assert target["model"]["value"] > target["baseline"]["value"]
    # The general task probes prior ability: the pretrained base already scores clearly above 0 on it.
    assert general["baseline"]["low"] > 0.05
    assert results["tasks"][GENERAL_TASK]["samples"] == 16
    # The verdict (maxRegression with the CI rule) is decided and reported with its reasons.
    assert results["verdict"] in ("Passed", "Failed") and results["verdictReasons"]
    # The demo's report carries the loss curve of every optimiser step and both tasks' bars.
    report = outcome.demo_report.read_text()
    assert len(run.outcome.loss_history) == run.finetune_status["progress"]["totalSteps"]
    assert report.count('<path d="M') == 1 and f"{GENERAL_TASK} / {RECIPE.general_score}" in report
