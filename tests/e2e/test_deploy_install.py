"""`helm install` into the local stack, then a FineTuneJob and an EvalJob run end to end through the
installed operator (its pod runs on the node agent with the chart's ServiceAccount, i.e. only the chart's
RBAC) in namespaces that enforce the `restricted` Pod Security Standard.

The release is namespaced (it watches only this module's job namespace), so it never touches other tests'
jobs. One replica: the node agent runs pods in one network namespace, where two replicas would collide on
the metrics/health ports (docs/node-agent.md). Pods run the operator's fake trainer/evaluator (its
documented test workload, KUBETUNE_TRAINER_MODULE / KUBETUNE_EVALUATOR_MODULE), seconds instead of minutes.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune_operator.devstack.kube_clients import KubeClients
from kubetune_operator.devstack.stack import LocalStack
from kubetune_operator.testing.operator_harness import FAKE_EVALUATOR, FAKE_TRAINER, evaljob, finetunejob

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubetune"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "kubetune.io/e2e": "true"}
GROUP, VERSION = "kubetune.io", "v1alpha1"


@dataclass(frozen=True)
class Installed:
    release: str
    system: str  # the release's namespace (the operator pod)
    jobs: str  # the watched namespace
    metrics_port: int
    health_port: int


def helm_binary() -> str:
    built = subprocess.run(
        [str(ROOT / "hack" / "build-helm.sh")], check=True, capture_output=True, text=True, timeout=1800
    )
    return built.stdout.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status), response.read().decode()


@pytest.fixture(scope="module")
def installed(
    stack: LocalStack, k8s: KubeClients, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    suffix = secrets.token_hex(3)
    release = f"kt-{suffix}"
    system, jobs = f"t-deploy-sys-{suffix}", f"t-deploy-jobs-{suffix}"
    for name in (system, jobs):
        k8s.core.create_namespace({"metadata": {"name": name, "labels": RESTRICTED}})
    metrics_port, health_port = free_port(), free_port()
    values = {
        "watchNamespaces": [jobs],
        "operator": {
            "replicas": 1,
            "metricsPort": metrics_port,
            "healthPort": health_port,
            "reconcileInterval": 1,
            "env": [
                {"name": "KUBETUNE_LAUNCHER", "value": "python"},
                {"name": "KUBETUNE_TRAINER_MODULE", "value": FAKE_TRAINER},
                {"name": "KUBETUNE_EVALUATOR_MODULE", "value": FAKE_EVALUATOR},
            ],
        },
    }
    values_file = tmp_path_factory.mktemp("helm") / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    helm = [helm_binary(), "--kubeconfig", str(stack.kubeconfig)]
    result = subprocess.run(
        [
            *helm,
            "install",
            release,
            str(CHART),
            "-n",
            system,
            "-f",
            str(values_file),
            "--wait",
            "--timeout",
            "180s",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    yield Installed(release, system, jobs, metrics_port, health_port)
    subprocess.run([*helm, "uninstall", release, "-n", system, "--wait"], check=False, timeout=120)
    for name in (jobs, system):
        k8s.core.delete_namespace(name, propagation_policy="Background")


def operator_pod(k8s: KubeClients, installed: Installed) -> Any:
    pods = k8s.core.list_namespaced_pod(
        installed.system, label_selector=f"app.kubernetes.io/instance={installed.release}"
    ).items
    assert len(pods) == 1, [pod.metadata.name for pod in pods]
    return pods[0]


def custom_status(k8s: KubeClients, namespace: str, plural: str, name: str) -> dict[str, Any]:
    body = k8s.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    status: dict[str, Any] = body.get("status") or {}
    return status


def finished(k8s: KubeClients, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    status = custom_status(k8s, namespace, plural, name)
    return status if status.get("phase") in ("Succeeded", "Failed") else None


def test_operator_pod_runs_restricted_with_the_chart_service_account(
    k8s: KubeClients, installed: Installed, wait_for: Any
) -> None:
    pod = operator_pod(k8s, installed)
    assert pod.status.phase == "Running"
    assert pod.spec.service_account_name == f"{installed.release}-kubetune"
    # Admitted by PodSecurity in a namespace that enforces `restricted`.
    labels = k8s.core.read_namespace(installed.system).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert pod.spec.containers[0].security_context.read_only_root_filesystem is True
    status, _ = wait_for(
        lambda: http_get(f"http://{pod.status.pod_ip}:{installed.health_port}/healthz"),
        60,
        "operator /healthz",
    )
    assert status == 200


def test_peering_object_carries_the_operators_keepalive(
    k8s: KubeClients, installed: Installed, wait_for: Any
) -> None:
    def peers() -> dict[str, Any] | None:
        peering = k8s.custom.get_namespaced_custom_object(
            "kopf.dev", "v1", installed.jobs, "kopfpeerings", "kubetune"
        )
        status: dict[str, Any] | None = peering.get("status")
        return status

    alive = wait_for(peers, 60, "a keep-alive in the KopfPeering (needs the chart's peering RBAC)")
    (peer,) = alive.values()
    assert peer["priority"] > 0  # --peering-priority defaulted to a random positive number


def test_finetunejob_and_evaljob_succeed_through_the_installed_operator(
    k8s: KubeClients, installed: Installed, wait_for: Any
) -> None:
    ftj = finetunejob("tune", '{"seconds": 2}')
    ftj["spec"]["podTemplate"]["serviceAccountName"] = "kubetune-workload"
    k8s.custom.create_namespaced_custom_object(GROUP, VERSION, installed.jobs, "finetunejobs", ftj)
    tuned = wait_for(
        lambda: finished(k8s, installed.jobs, "finetunejobs", "tune"), 180, "FineTuneJob finished"
    )
    assert tuned["phase"] == "Succeeded", tuned
    assert tuned["output"]["digest"].startswith("sha256:")
    assert any(c["type"] == "Succeeded" and c["status"] == "True" for c in tuned["conditions"])

    evj = evaljob("score", {"fineTuneJobRef": {"name": "tune"}}, '{"seconds": 1}')
    k8s.custom.create_namespaced_custom_object(GROUP, VERSION, installed.jobs, "evaljobs", evj)
    scored = wait_for(lambda: finished(k8s, installed.jobs, "evaljobs", "score"), 180, "EvalJob finished")
    assert scored["phase"] == "Succeeded", scored

    # The workers really ran as restricted pods under the token-less workload identity.
    pods = k8s.core.list_namespaced_pod(installed.jobs, label_selector="kubetune.io/job-name=tune").items
    assert pods and all(pod.spec.service_account_name == "kubetune-workload" for pod in pods)
    assert all(pod.status.phase == "Succeeded" for pod in pods)
    events = k8s.core.list_namespaced_event(installed.jobs).items
    assert any(event.involved_object.name == "tune" for event in events), "the operator posted no Event"


def test_operator_metrics_pass_promtool_and_count_the_jobs(
    k8s: KubeClients, installed: Installed, wait_for: Any
) -> None:
    pod = operator_pod(k8s, installed)
    url = f"http://{pod.status.pod_ip}:{installed.metrics_port}/metrics"
    _, exposition = wait_for(lambda: http_get(url), 30, "operator /metrics")
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, check=False, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "# TYPE kubetune_operator_jobs gauge" in exposition
    assert "kubetune_operator_reconcile_duration_seconds_bucket" in exposition
