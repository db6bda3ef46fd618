"""The chart's alerts and dashboard use only metrics the operator, trainer and evaluator really export;
`promtool check rules` accepts the rendered PrometheusRule and `promtool test rules` proves the alerts fire;
`promtool check metrics` accepts the three components' /metrics.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from test_chart_render import render  # the shared `helm template` helper

import kubetune_operator.controller.metrics  # registers the operator's collectors on REGISTRY
from kubetune_devtools.devstack.binaries import client_tool
from kubetune_devtools.testing.operator_harness import free_port
from kubetune_evaluator.prometheus_metrics import EvalGauges
from kubetune_operator.controller.metrics import RECONCILE_SECONDS, TRACKER
from kubetune_trainer.observability import StatusServer, TrainerMetrics

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "kubetune"


METRIC_NAME = re.compile(r"\bkubetune_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}

del kubetune_operator.controller.metrics


def exported_series_names() -> set[str]:
    """Every sample name the three components can expose, from their real registries."""
    registries: list[CollectorRegistry] = [REGISTRY, TrainerMetrics("job").registry, EvalGauges().registry]
    names: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return {name for name in names if name.startswith("kubetune_")}


def rendered_rule_groups() -> dict[str, Any]:
    (rule,) = [
        doc
        for doc in render("--set", "monitoring.prometheusRule.enabled=true")
        if doc["kind"] == "PrometheusRule"
    ]
    spec: dict[str, Any] = rule["spec"]
    return spec


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exprs += [
        variable["definition"] for variable in dashboard["templating"]["list"] if "definition" in variable
    ]
    return exprs


def test_the_registries_export_what_the_monitoring_relies_on() -> None:
    names = exported_series_names()
    assert {"kubetune_operator_jobs", "kubetune_trainer_loss", "kubetune_eval_score"} <= names


def test_alerts_use_only_exported_metrics() -> None:
    exprs = [rule["expr"] for group in rendered_rule_groups()["groups"] for rule in group["rules"]]
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used, "no kubetune metric in the alerts"
    assert used <= exported_series_names(), f"not exported: {used - exported_series_names()}"


def test_dashboard_uses_only_exported_metrics_and_covers_the_brief() -> None:
    exprs = dashboard_expressions()
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used <= exported_series_names(), f"not exported: {used - exported_series_names()}"
    for needed in (
        "kubetune_operator_jobs",  # jobs by phase
        "kubetune_trainer_loss",
        "kubetune_trainer_eval_loss",
        "kubetune_trainer_tokens_per_second",
        "kubetune_operator_gpu_seconds_total",  # GPU-hours per namespace
        "kubetune_eval_score",
    ):
        assert needed in used, needed


def test_alerts_cover_the_failure_modes() -> None:
    alerts = {rule["alert"] for group in rendered_rule_groups()["groups"] for rule in group["rules"]}
    assert {
        "KubetuneJobFailed",
        "KubetuneJobPendingTooLong",
        "KubetuneTrainingNoProgress",
        "KubetuneLossNotFinite",
        "KubetuneRestartsClimbing",
    } <= alerts


@pytest.fixture
def promtool() -> str:
    """The project's pinned promtool (hack/tools/prometheus); a missing one fails the test, never skips."""
    return str(client_tool("promtool"))


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "kubetune-rules.yaml"
    path.write_text(yaml.safe_dump(rendered_rule_groups()))
    return path


def test_promtool_check_rules_is_clean(promtool: str, rules_file: Path) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_alerts_fire_on_synthetic_series(promtool: str, rules_file: Path, tmp_path: Path) -> None:
    """promtool's rule unit tests: the alerts fire on the series that mean trouble, and only then."""
    tests = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'kubetune_trainer_loss{namespace="a",job_name="nan"}', "values": "1 NaN NaN"},
                    {
                        "series": 'kubetune_trainer_loss{namespace="a",job_name="inf"}',
                        "values": "1 +Inf +Inf",
                    },
                    {"series": 'kubetune_trainer_loss{namespace="a",job_name="ok"}', "values": "3 2 1"},
                    {
                        "series": 'kubetune_operator_jobs{namespace="a",kind="FineTuneJob",phase="Failed"}',
                        "values": "0 1 1",
                    },
                    {"series": 'kubetune_trainer_step{namespace="a",job_name="stuck"}', "values": "5x20"},
                    {
                        "series": 'kubetune_trainer_total_steps{namespace="a",job_name="stuck"}',
                        "values": "9x20",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "2m",
                        "alertname": "KubetuneLossNotFinite",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "namespace": "a", "job_name": name},
                                "exp_annotations": {
                                    "summary": f"FineTuneJob a/{name} has a non-finite loss",
                                    "description": "The learning rate is too high or the data has empty "
                                    "completions; the run is wasting GPUs.",
                                },
                            }
                            for name in ("inf", "nan")
                        ],
                    },
                    {"eval_time": "0m", "alertname": "KubetuneJobFailed", "exp_alerts": []},
                    {
                        "eval_time": "2m",
                        "alertname": "KubetuneJobFailed",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "namespace": "a",
                                    "kind": "FineTuneJob",
                                },
                                "exp_annotations": {
                                    "summary": "1 FineTuneJob(s) failed in a",
                                    "description": "kubectl -n a get finetunejobs shows which; kubectl "
                                    "describe shows why (conditions, Events).",
                                },
                            }
                        ],
                    },
                    {"eval_time": "5m", "alertname": "KubetuneTrainingNoProgress", "exp_alerts": []},
                    {
                        "eval_time": "16m",
                        "alertname": "KubetuneTrainingNoProgress",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "namespace": "a", "job_name": "stuck"},
                                "exp_annotations": {
                                    "summary": "FineTuneJob a/stuck made no step in 15 minutes",
                                    "description": "A hung collective, a stalled data loader or a slow "
                                    "checkpoint upload.",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    test_file = tmp_path / "kubetune-rules-test.yaml"
    test_file.write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _promtool_check_metrics(promtool: str, url: str) -> subprocess.CompletedProcess[str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        exposition = response.read().decode()
    assert "kubetune_" in exposition
    return subprocess.run(
        [promtool, "check", "metrics"], input=exposition, check=False, capture_output=True, text=True
    )


def test_promtool_check_metrics_on_the_evaluators_endpoint(
    promtool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", str(port))
    monkeypatch.setenv("POD_IP", "127.0.0.1")
    gauges = EvalGauges()
    gauges.score.labels("rating", "rougeL", "model").set(0.42)
    gauges.delta.labels("rating", "rougeL").set(-0.01)
    gauges.passed.set(1)
    gauges.serve()
    result = _promtool_check_metrics(promtool, f"http://127.0.0.1:{port}/metrics")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_metrics_on_the_trainers_endpoint(
    promtool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", str(port))
    monkeypatch.setenv("POD_IP", "127.0.0.1")
    server = StatusServer(TrainerMetrics("review-rating"))
    server.metrics.set(server.metrics.loss, 1.5)
    server.metrics.inc(server.metrics.tokens, 1000)
    assert server.start() == port
    try:
        result = _promtool_check_metrics(promtool, f"http://127.0.0.1:{port}/metrics")
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_metrics_on_the_operators_exposition(promtool: str) -> None:
    # The operator serves prometheus_client's default REGISTRY (serve_metrics); the e2e test scrapes the
    # installed operator pod too. Here: the same registry with every family populated.

    TRACKER.observe("uid-1", "FineTuneJob", "team-a", phase="Running", restarts=0, gpus=8, at=0.0)
    TRACKER.observe("uid-1", "FineTuneJob", "team-a", phase="Running", restarts=1, gpus=8, at=60.0)
    RECONCILE_SECONDS.labels("FineTuneJob").observe(0.02)
    restarts = REGISTRY.get_sample_value(
        "kubetune_operator_restarts_total", {"kind": "FineTuneJob", "namespace": "team-a"}
    )
    assert restarts is not None and restarts >= 1
    exposition = generate_latest(REGISTRY).decode()
    TRACKER.forget("uid-1")
    assert 'kubetune_operator_gpu_seconds_total{kind="FineTuneJob",namespace="team-a"}' in exposition
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
