"""`kubetune operator` builds its settings once, from flags with KUBETUNE_* environment fallbacks (the Helm
chart's input), and hands them to the operator as one value; nothing reads the environment afterwards."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kubetune_operator.cli import app
from kubetune_operator.cli import operator as operator_cli
from kubetune_operator.controller.settings import DEFAULTS, OperatorSettings

CHART_ENV = {
    "KUBETUNE_RECONCILE_INTERVAL": "3",
    "KUBETUNE_PENDING_TIMEOUT": "42",
    "KUBETUNE_POD_STORAGE_RETRY_SECONDS": "7.5",
    "KUBETUNE_POLICY": '{"maxGpusPerJob": 8}',
    "KUBETUNE_NETWORK_POLICY": "false",
    "KUBETUNE_NETWORK_POLICY_METRICS_FROM": '[{"namespaceSelector": {}}]',
}


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[OperatorSettings]:
    """The settings `kubetune operator` would run Kopf with (Kopf itself is not started)."""
    runs: list[OperatorSettings] = []
    monkeypatch.setattr(operator_cli, "run_operator", lambda settings, **_: runs.append(settings))
    for name in (*CHART_ENV, "KUBETUNE_LAUNCHER", "KUBETUNE_TRAINER_MODULE"):
        monkeypatch.delenv(name, raising=False)
    return runs


def test_without_flags_or_environment_the_defaults_are_the_settings_own(
    started: list[OperatorSettings],
) -> None:
    result = CliRunner().invoke(app, ["operator"])
    assert result.exit_code == 0, result.output
    assert started == [DEFAULTS]


def test_the_charts_environment_becomes_the_settings(started: list[OperatorSettings]) -> None:
    result = CliRunner().invoke(app, ["operator", "--namespace", "team-a"], env=CHART_ENV)
    assert result.exit_code == 0, result.output
    (settings,) = started
    assert settings.reconcile_interval_seconds == 3.0
    assert settings.pending_timeout_seconds == 42.0
    assert settings.pod_storage_retry_seconds == 7.5
    assert settings.policy.max_gpus_per_job == 8
    assert settings.network_policy is False
    assert settings.network_policy_metrics_from == ({"namespaceSelector": {}},)


def test_a_flag_wins_over_the_environment(started: list[OperatorSettings]) -> None:
    argv = ["operator", "--reconcile-interval", "1", "--launcher", "python", "--network-policy"]
    result = CliRunner().invoke(app, argv, env=CHART_ENV)
    assert result.exit_code == 0, result.output
    (settings,) = started
    assert (settings.reconcile_interval_seconds, settings.launcher, settings.network_policy) == (
        1.0,
        "python",
        True,
    )


@pytest.mark.parametrize(
    ("name", "value", "flag"),
    [
        (
            "KUBETUNE_NETWORK_POLICY_METRICS_FROM",
            '{"namespaceSelector": {}}',
            "--network-policy-metrics-from",
        ),
        ("KUBETUNE_POLICY", '{"maxGpuPerJob": 8}', "--policy"),
        ("KUBETUNE_LAUNCHER", "torchrun", "--launcher"),
        ("KUBETUNE_POD_STORAGE_RETRY_SECONDS", "-1", "--pod-storage-retry-seconds"),
        ("KUBETUNE_POD_STORAGE_RETRY_SECONDS", "nan", "--pod-storage-retry-seconds"),
        ("KUBETUNE_POD_STORAGE_RETRY_SECONDS", "inf", "--pod-storage-retry-seconds"),
    ],
)
def test_a_malformed_setting_stops_the_operator_before_it_starts(
    started: list[OperatorSettings], name: str, value: str, flag: str
) -> None:
    result = CliRunner().invoke(app, ["operator"], env={name: value})
    assert result.exit_code == 2
    assert flag in result.output
    assert started == []
