"""`kubetune dev` without a running stack: clear messages and exit codes, never a traceback."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubetune_devtools.devstack.layout import StackLayout
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_operator.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def empty_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBETUNE_DEV_DIR", str(tmp_path))
    return tmp_path


def test_env_before_up_says_to_run_up() -> None:
    result = runner.invoke(app, ["dev", "env"])
    assert result.exit_code == 1
    assert "kubetune dev up" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_env_prints_the_standard_variable_names(empty_state_dir: Path) -> None:
    stack = LocalStack(
        state_dir=empty_state_dir,
        kubeconfig=empty_state_dir / "kubeconfig",
        api_server_url="https://127.0.0.1:16443",
        ca_file=empty_state_dir / "pki" / "ca.crt",
        s3_endpoint_url="http://127.0.0.1:19000",
        s3_access_key_id="kubetune",
        s3_secret_access_key="s3cr3t with space",
        s3_region="us-east-1",
        prometheus_url="http://127.0.0.1:19090",
    )
    StackLayout(empty_state_dir).stack_file.write_text(stack.to_json())
    result = runner.invoke(app, ["dev", "env"])
    assert result.exit_code == 0, result.output
    exported = dict(shlex.split(line)[1].split("=", 1) for line in result.output.splitlines())
    assert exported == {
        # The stack's own kubectl, helm and promtool first, ahead of the evaluating shell's PATH.
        "PATH": f"{empty_state_dir / 'bin'}:$PATH",
        "KUBECONFIG": str(empty_state_dir / "kubeconfig"),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:19000",
        "AWS_ACCESS_KEY_ID": "kubetune",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t with space",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PROMETHEUS_URL": "http://127.0.0.1:19090",
    }


def test_status_of_a_stopped_stack_lists_every_component_as_stopped() -> None:
    result = runner.invoke(app, ["dev", "status"])
    assert result.exit_code == 3
    for name in (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "minio",
        "prometheus",
    ):
        assert f"{name}" in result.output
    assert "running" not in result.output


def test_down_of_an_unknown_component_names_the_known_ones() -> None:
    result = runner.invoke(app, ["dev", "down", "kubelet"])
    assert result.exit_code == 2
    assert "unknown component(s) kubelet" in result.output
    assert "node-agent" in result.output
