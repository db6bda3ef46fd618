"""`kubetune demo`'s flow, smaller: Helm-installed operator, tiny base model and the standard-library dataset
in MinIO, a 2-node FineTuneJob and an EvalJob with a baseline, results read from S3, the gate, clean-up."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException
from rich.console import Console

from kubetune_devtools.demo.flow import DemoOptions, run_demo
from kubetune_devtools.demo.plan import GATE_SCORE, TUNED_TASK, DemoSize
from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.stack import LocalStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# ~100 optimiser steps: about the fewest in which the tiny model measurably learns the `module` task.
SMALL = DemoSize(rows=200, epochs=16, summarize_examples=16, eval_samples=20, max_new_tokens=16)


def _namespace_gone_or_terminating(k8s: KubeClients, name: str) -> bool:
    try:
        namespace = k8s.core.read_namespace(name)
    except ApiException as error:
        return error.status == 404
    return namespace.status is not None and namespace.status.phase == "Terminating"


def test_demo_tunes_beats_the_base_and_cleans_up(stack: LocalStack, k8s: KubeClients, tmp_path: Path) -> None:
    namespace = f"t-demo-{secrets.token_hex(3)}"
    console = Console(width=140, record=True)
    options = DemoOptions(size=SMALL, output_dir=tmp_path, namespace=namespace, timeout_seconds=600)

    outcome = run_demo(options, console)

    # The gate passed on the tuned task, and the printed table carries the same numbers.
    assert (outcome.gate.task, outcome.gate.score) == (TUNED_TASK, GATE_SCORE)
    assert outcome.gate.base is not None and outcome.gate.tuned > outcome.gate.base
    printed = console.export_text()
    assert f"{outcome.gate.tuned:.3f}" in printed and "HTML report: s3://" in printed
    assert {row.task for row in outcome.rows} == {"module", "summarize"}

    # The trainer really ran and reported progress through the operator (the last report may lag one step).
    progress = outcome.finetune_status["progress"]
    assert outcome.finetune_status["phase"] == "Succeeded"
    assert progress["totalSteps"] > 0 and progress["step"] >= 0.9 * progress["totalSteps"]

    # Local copies of the evaluator's outputs, and they agree with the table.
    results = json.loads(outcome.results_copy.read_text())
    entry = results["tasks"][TUNED_TASK]["scores"][GATE_SCORE]
    assert entry["model"]["value"] == pytest.approx(outcome.gate.tuned)
    assert results["baseline"]["uri"].endswith("/base/")
    assert "<html" in outcome.report_copy.read_text().lower()

    # Clean-up removed what the demo created; the stack the test session shares keeps running.
    assert _namespace_gone_or_terminating(k8s, namespace)
    assert _namespace_gone_or_terminating(k8s, f"{namespace}-system")
    assert "local stack was already up and keeps running" in printed
    assert k8s.core.list_namespace(limit=1).items
