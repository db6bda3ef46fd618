"""`kubetune demo --model tiny`'s flow, smaller: Helm-installed operator, tiny base model and the
standard-library dataset in MinIO, a 2-node FineTuneJob and an EvalJob with a baseline, results read from S3,
the gate, the demo report, clean-up. (The default, pretrained model: test_demo_smollm2.py.)"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException
from rich.console import Console

from kubetune_devtools.demo.flow import DemoOptions, run_demo
from kubetune_devtools.demo.plan import RECIPES, with_size
from kubetune_devtools.demo.stdlib_docs import GENERAL_TASK, TARGET_TASK
from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.stack import LocalStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# ~100 optimiser steps: about the fewest in which the tiny model measurably learns the `module` task.
SMALL = with_size(
    RECIPES["tiny"], rows=200, epochs=16, eval_samples=20, target_new_tokens=16, general_new_tokens=16
)
GATE_SCORE = SMALL.gate_score


def _namespace_gone_or_terminating(k8s: KubeClients, name: str) -> bool:
    try:
        namespace = k8s.core.read_namespace(name)
    except ApiException as error:
        return error.status == 404
    return namespace.status is not None and namespace.status.phase == "Terminating"


def test_demo_tunes_beats_the_base_and_cleans_up(stack: LocalStack, k8s: KubeClients, tmp_path: Path) -> None:
    namespace = f"t-demo-{secrets.token_hex(3)}"
    console = Console(width=140, record=True)
    options = DemoOptions(
        model="tiny", recipe=SMALL, output_dir=tmp_path, namespace=namespace, timeout_seconds=600
    )

    outcome = run_demo(options, console)

    # One method (the tiny recipe's: full); the gate passed on the target task, the table carries its numbers.
    (run,) = outcome.runs
    assert run.method == "full"
    assert (run.gate.task, run.gate.score) == (TARGET_TASK, GATE_SCORE)
    assert run.gate.base is not None and run.gate.tuned > run.gate.base
    assert run.gate.delta_low is not None and run.gate.delta_low > 0
    printed = console.export_text()
    assert f"{run.gate.tuned:.3f}" in printed and "EvalJob report (full): s3://" in printed
    assert {row.task for row in run.rows} == {TARGET_TASK, GENERAL_TASK}

    # The trainer really ran and reported progress through the operator (the last report may lag one step).
    progress = run.finetune_status["progress"]
    assert run.finetune_status["phase"] == "Succeeded"
    assert progress["totalSteps"] > 0 and progress["step"] >= 0.9 * progress["totalSteps"]

    # Local copies of the evaluator's outputs, and they agree with the table.
    results = json.loads(run.results_copy.read_text())
    entry = results["tasks"][TARGET_TASK]["scores"][GATE_SCORE]
    assert entry["model"]["value"] == pytest.approx(run.gate.tuned)
    assert results["baseline"]["uri"].endswith("/base/")
    assert "<html" in run.report_copy.read_text().lower()
    # The demo's own report: the loss curve from the trainer's history, and the comparison.
    assert len(run.outcome.loss_history) == progress["totalSteps"]
    assert '<path d="M' in outcome.demo_report.read_text()

    # Clean-up removed what the demo created; the stack the test session shares keeps running.
    assert _namespace_gone_or_terminating(k8s, namespace)
    assert _namespace_gone_or_terminating(k8s, f"{namespace}-system")
    assert "local stack was already up and keeps running" in printed
    assert k8s.core.list_namespace(limit=1).items
