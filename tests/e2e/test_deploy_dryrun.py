"""`helm template` output is accepted by the real API server (server-side dry-run apply), monitoring
objects included: the Prometheus Operator CRDs are applied from their vendored published schemas first."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune_devtools.devstack.binaries import client_tool
from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.probes import wait_for
from kubetune_devtools.devstack.stack import LocalStack

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubetune"
PROMETHEUS_OPERATOR_CRDS = ROOT / "hack" / "vendor" / "prometheus-operator-crds"
MONITORING_ON = [
    "--set", "monitoring.serviceMonitor.enabled=true",
    "--set", "monitoring.podMonitor.enabled=true",
    "--set", "monitoring.prometheusRule.enabled=true",
    "--set", "monitoring.grafanaDashboard.enabled=true",
]  # fmt: skip


def kubectl(stack: LocalStack, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(client_tool("kubectl")), "--kubeconfig", str(stack.kubeconfig), *args],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def crds_applied(stack: LocalStack) -> None:
    """The chart's CRDs and the Prometheus Operator's, applied for real (dry-run cannot create kinds)."""
    for directory in (CHART / "crds", PROMETHEUS_OPERATOR_CRDS):
        applied = kubectl(stack, "apply", "--server-side", "--force-conflicts", "-f", str(directory))
        assert applied.returncode == 0, applied.stderr
    names = [
        "servicemonitors.monitoring.coreos.com",
        "podmonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    ]

    # `kubectl wait` fails at once ("conditions accessor error") while a new CRD has no conditions yet.
    def established() -> bool:
        waited = kubectl(
            stack, "wait", "--for=condition=Established", "--timeout=10s", *[f"crd/{n}" for n in names]
        )
        return waited.returncode == 0

    wait_for(established, 60, "the CRDs to be Established")


@pytest.fixture(scope="module")
def namespaces(k8s: KubeClients) -> Iterator[list[str]]:
    """Release namespace plus two watched namespaces (a Role in a missing namespace is rejected)."""
    suffix = secrets.token_hex(3)
    names = [f"t-deploy-dry-{role}-{suffix}" for role in ("sys", "a", "b")]
    for name in names:
        k8s.core.create_namespace({"metadata": {"name": name, "labels": {"kubetune.io/e2e": "true"}}})
    yield names
    for name in names:
        k8s.core.delete_namespace(name, propagation_policy="Background")


def server_dry_run(stack: LocalStack, manifest: str) -> subprocess.CompletedProcess[str]:
    return kubectl(
        stack, "apply", "--server-side", "--dry-run=server", "--field-manager=helm", "-f", "-", stdin=manifest
    )


def template(namespace: str, *args: str) -> str:
    rendered = subprocess.run(
        [str(client_tool("helm")), "template", "kt-dry", str(CHART), "--namespace", namespace, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stderr
    return rendered.stdout


def test_cluster_wide_chart_passes_server_side_dry_run(
    stack: LocalStack, crds_applied: None, namespaces: list[str]
) -> None:
    manifest = template(namespaces[0], *MONITORING_ON)
    kinds = {doc["kind"] for doc in yaml.safe_load_all(manifest) if doc}
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ClusterRole", "ClusterKopfPeering"} <= kinds
    result = server_dry_run(stack, manifest)
    assert result.returncode == 0, result.stderr
    assert "(server dry run)" in result.stdout


def test_namespaced_chart_passes_server_side_dry_run(
    stack: LocalStack, crds_applied: None, namespaces: list[str]
) -> None:
    system, team_a, team_b = namespaces
    manifest = template(system, f"--set=watchNamespaces={{{team_a},{team_b}}}", *MONITORING_ON)
    result = server_dry_run(stack, manifest)
    assert result.returncode == 0, result.stderr
    assert "role.rbac.authorization.k8s.io/kt-dry-kubetune-operator serverside-applied (server dry run)" in (
        result.stdout
    )


def test_the_dry_run_really_validates_monitoring_objects(
    stack: LocalStack, crds_applied: None, namespaces: list[str]
) -> None:
    """Control: a ServiceMonitor that breaks the published schema is rejected, so the passes above mean
    the chart's objects match it."""
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(template(namespaces[0], *MONITORING_ON)) if d]
    (monitor,) = [doc for doc in docs if doc["kind"] == "ServiceMonitor"]
    monitor["spec"]["endpoints"][0]["interval"] = "every now and then"
    result = server_dry_run(stack, yaml.safe_dump(monitor))
    assert result.returncode != 0
    assert "spec.endpoints[0].interval" in result.stderr
