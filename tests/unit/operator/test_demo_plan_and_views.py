"""The demo's pure parts: manifests valid under the API models, progress lines, results table and gate,
the `--compare` option."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from kubetune_devtools.cli.demo import parse_methods
from kubetune_devtools.demo.plan import RECIPES, DemoPlan, evaljob_manifest, finetunejob_manifest, with_size
from kubetune_devtools.demo.progress_view import eval_line, finetune_line, finished, run_seconds
from kubetune_devtools.demo.results_table import DemoGateError, check_gate, results_table, score_rows
from kubetune_devtools.demo.stdlib_docs import GENERAL_TASK, TARGET_TASK, build_rows
from kubetune_operator.api import EvalJob, FineTuneJob, parse_manifest
from kubetune_operator.cli import app

PLAN = DemoPlan(
    run_id="r1", s3_endpoint="http://127.0.0.1:9000", recipe=with_size(RECIPES["smollm2"], rows=100)
)
TUNED_TASK = TARGET_TASK


def test_finetunejob_is_a_valid_two_node_single_task_job() -> None:
    job = parse_manifest(finetunejob_manifest(PLAN, "lora"))
    assert isinstance(job, FineTuneJob)
    assert job.spec.resources.nodes == 2
    assert job.spec.method == "lora" and job.spec.lora is not None
    # Single-task: only the target task is trained; the general task is only scored.
    assert [task.name for task in job.spec.tasks or []] == [TARGET_TASK]
    assert job.spec.output.uri == "s3://kubetune-demo/runs/r1/tuned-lora/"
    assert job.spec.storage.credentials_secret == "demo-s3"
    # SmolLM2-Instruct's chat format around each instruction.
    prompt = (job.spec.tasks or [])[0].templates[0].prompt
    assert prompt.startswith("<|im_start|>user\nWhich module defines") and prompt.endswith("assistant\n")
    full = parse_manifest(finetunejob_manifest(PLAN, "full"))
    assert isinstance(full, FineTuneJob) and full.spec.method == "full" and full.spec.lora is None
    assert full.spec.hyperparameters.learning_rate != job.spec.hyperparameters.learning_rate


def test_evaljob_scores_target_and_general_task_against_the_base() -> None:
    job = parse_manifest(evaljob_manifest(PLAN, "full"))
    assert isinstance(job, EvalJob)
    assert job.spec.model.fine_tune_job_ref is not None
    assert job.spec.model.fine_tune_job_ref.name == PLAN.finetune_name("full") == "stdlib-docs-full"
    assert job.spec.baseline is not None and job.spec.baseline.uri == PLAN.model_uri
    assert job.spec.dataset is not None and job.spec.dataset.split == "test"
    assert [task.name for task in job.spec.tasks] == [TARGET_TASK, GENERAL_TASK]
    assert job.spec.thresholds.max_regression == 0.05
    assert job.spec.output.uri == "s3://kubetune-demo/runs/r1/eval-full/"


def test_the_tiny_recipe_keeps_plain_prompts_and_full_fine_tuning() -> None:
    plan = DemoPlan(run_id="r1", s3_endpoint="http://x", recipe=RECIPES["tiny"], methods=("full",))
    job = parse_manifest(finetunejob_manifest(plan, "full"))
    assert isinstance(job, FineTuneJob) and job.spec.method == "full"
    assert (job.spec.tasks or [])[0].templates[0].prompt.endswith("\nAnswer:")


def test_compare_option_parses_methods() -> None:
    assert parse_methods("full,lora") == ("full", "lora")
    assert parse_methods(" lora , lora") == ("lora",)
    with pytest.raises(typer.BadParameter, match="got 'qlora'"):
        parse_methods("full,qlora")


def test_demo_rows_are_real_text_with_every_template_field() -> None:
    rows = build_rows()
    assert len(rows) > 200
    assert len({row["name"] for row in rows}) == len(rows)
    for row in rows[:20]:
        assert row["summary"].endswith(".") and row["name"].startswith(row["module"] + ".")
        assert row["excerpt"] == row["details"][: len(row["excerpt"])]


def test_progress_lines_show_step_loss_and_eta() -> None:
    status = {
        "phase": "Running",
        "progress": {"step": 40, "totalSteps": 160, "percent": 25.0, "trainLoss": 2.1134, "etaSeconds": 65},
    }
    assert finetune_line(status) == "Running  step 40/160 (25.0%)  loss 2.113  ETA 1m05s"
    assert finetune_line({}) == "Pending"
    failed = {
        "phase": "Failed",
        "conditions": [{"type": "Failed", "status": "True", "reason": "X", "message": "m"}],
    }
    assert finetune_line(failed) == "Failed — X: m"
    assert eval_line({"phase": "Succeeded", "verdict": "Passed"}) == "Succeeded  verdict Passed"
    assert finished({"phase": "Succeeded"}) and not finished({"phase": "Running"})
    timed = {"startTime": "2026-11-30T20:16:01Z", "completionTime": "2026-11-30T20:20:31Z"}
    assert run_seconds(timed) == 270.0 and run_seconds({"startTime": timed["startTime"]}) is None


def _results(tuned: float, base: float) -> dict[str, Any]:
    entry = {
        "model": {"value": tuned},
        "baseline": {"value": base},
        "delta": {"value": tuned - base, "low": tuned - base - 0.1, "high": tuned - base + 0.1},
    }
    return {"tasks": {TUNED_TASK: {"scores": {"rougeL": entry, "bleu": {"model": {"value": 0.5}}}}}}


def test_results_table_and_gate() -> None:
    rows = score_rows(_results(0.8, 0.1))
    assert [(row.task, row.score) for row in rows] == [(TUNED_TASK, "rougeL"), (TUNED_TASK, "bleu")]
    assert rows[1].base is None and rows[1].delta is None
    assert check_gate(rows, TUNED_TASK, "rougeL").delta == pytest.approx(0.7)
    console = Console(width=120, record=True)
    console.print(results_table(rows, "Passed"))
    text = console.export_text()
    assert "verdict: Passed" in text and "+0.700" in text and "[+0.600, +0.800]" in text


def test_gate_needs_the_delta_ci_above_zero() -> None:
    with pytest.raises(
        DemoGateError, match=r"not clearly better than its base on task 'module': rougeL tuned 0.1"
    ):
        check_gate(score_rows(_results(0.1, 0.1)), TUNED_TASK, "rougeL")
    # +0.05 with the CI [-0.05, +0.15]: better on average, but not clearly.
    with pytest.raises(DemoGateError, match=r"CI of the delta \[-0.050, \+0.150\]"):
        check_gate(score_rows(_results(0.15, 0.1)), TUNED_TASK, "rougeL")
    with pytest.raises(DemoGateError, match="no exactMatch score"):
        check_gate(score_rows(_results(0.8, 0.1)), TUNED_TASK, "exactMatch")


def test_demo_cli_rejects_an_unknown_model_without_a_traceback() -> None:

    result = CliRunner().invoke(app, ["demo", "--model", "gpt-5"])
    assert result.exit_code == 2
    assert "--model: expected `smollm2` or `tiny`, got 'gpt-5'" in result.output
