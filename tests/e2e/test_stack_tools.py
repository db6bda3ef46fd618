"""`kubetune dev env` hands the user the project's own client tools: kubectl of the API server's release,
helm and promtool, first on PATH, whatever else the machine has installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubetune_devtools.devstack.binaries import client_tool
from kubetune_devtools.devstack.stack import LocalStack

pytestmark = pytest.mark.e2e

KUBETUNE = Path(sys.executable).parent / "kubetune"


def in_dev_env(stack: LocalStack, script: str) -> subprocess.CompletedProcess[str]:
    """Run `script` in a shell that evaluated `kubetune dev env`, as the README tells users to."""
    return subprocess.run(
        ["bash", "-c", f'eval "$({KUBETUNE} dev env --state-dir {stack.state_dir})"\n{script}'],
        # A PATH that already holds another kubectl (the machine image's /usr/bin/kubectl, say).
        env={**os.environ, "PATH": f"/usr/local/bin:/usr/bin:/bin:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dev_env_puts_the_projects_kubectl_helm_and_promtool_first(stack: LocalStack) -> None:
    result = in_dev_env(stack, "command -v kubectl helm promtool")
    assert result.returncode == 0, result.stderr
    found = [Path(line) for line in result.stdout.split()]
    assert [path.name for path in found] == ["kubectl", "helm", "promtool"]
    for path in found:
        assert path.parent == stack.tools_dir
        assert path.resolve() == client_tool(path.name).resolve()


def test_kubectl_matches_the_api_servers_release(stack: LocalStack) -> None:
    result = in_dev_env(stack, "kubectl version -o json")
    assert result.returncode == 0, result.stderr
    versions = json.loads(result.stdout)
    client, server = versions["clientVersion"], versions["serverVersion"]
    assert client["gitVersion"] == server["gitVersion"], versions
    assert client["gitVersion"].startswith("v1."), versions


def test_helm_and_promtool_report_their_pinned_releases(stack: LocalStack) -> None:
    result = in_dev_env(stack, "helm version --short && promtool --version")
    assert result.returncode == 0, result.stderr
    helm_version, promtool_line = result.stdout.splitlines()[0], result.stdout.splitlines()[1]
    pins = (Path(__file__).resolve().parents[2] / "hack" / "tools").joinpath
    assert helm_version.split("+")[0] in pins("helm", "go.mod").read_text()
    assert promtool_line.startswith("promtool, version 3."), promtool_line
