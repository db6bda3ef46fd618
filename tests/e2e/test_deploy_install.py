"""`helm install` into the local stack, then a FineTuneJob and an EvalJob run end to end through the
installed operator (its pods run inside the operator image the chart names, built by `make images`, on the
node agent with the chart's ServiceAccount, i.e. only the chart's RBAC) in namespaces that enforce the
`restricted` Pod Security Standard.

The release is namespaced (it watches only this module's job namespace), so it never touches other tests'
jobs. It runs the chart's default two replicas with Kopf peering: one works, one stands by and takes over.
Job pods run the operator's fake trainer/evaluator (its documented test workload, KUBETUNE_TRAINER_MODULE /
KUBETUNE_EVALUATOR_MODULE) in the checkout's environment (image kubetune.dev/checkout, chart values
workloadImages), seconds instead of minutes; the demo runs the real trainer and evaluator images.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune_devtools.devstack.binaries import build_images, client_tool
from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import (
    CHECKOUT_IMAGE,
    FAKE_EVALUATOR,
    FAKE_TRAINER,
    evaljob,
    finetunejob,
    free_port,
)

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


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status), response.read().decode()


@pytest.fixture(scope="module")
def installed(
    stack: LocalStack, k8s: KubeClients, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    # The operator's pods run inside the operator image the chart names, as on a cluster.
    build_images("operator")
    suffix = secrets.token_hex(3)
    release = f"kt-{suffix}"
    system, jobs = f"t-deploy-sys-{suffix}", f"t-deploy-jobs-{suffix}"
    for name in (system, jobs):
        k8s.core.create_namespace({"metadata": {"name": name, "labels": RESTRICTED}})
    metrics_port, health_port = free_port(), free_port()
    values = {
        "watchNamespaces": [jobs],
        # The chart's default policy plus the fast mode's image (the fakes below), and a GPU limit.
        "policy": {
            "maxGpusPerJob": 8,
            "allowedImageRepositories": ["kubetune/trainer", "kubetune/evaluator", CHECKOUT_IMAGE],
        },
        # The fake workloads live only in the checkout's environment (the node agent's fast mode); the
        # real trainer and evaluator images run in the demo (tests/e2e/test_demo.py).
        "workloadImages": {"trainer": {"image": CHECKOUT_IMAGE}, "evaluator": {"image": CHECKOUT_IMAGE}},
        "operator": {
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
    helm = [str(client_tool("helm")), "--kubeconfig", str(stack.kubeconfig)]
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


def operator_pods(k8s: KubeClients, installed: Installed) -> list[Any]:
    pods: list[Any] = k8s.core.list_namespaced_pod(
        installed.system, label_selector=f"app.kubernetes.io/instance={installed.release}"
    ).items
    return [pod for pod in pods if pod.metadata.deletion_timestamp is None]


def operator_log(stack: LocalStack, pod: Any) -> str:
    """The node agent keeps each container's output under its state dir (docs/node-agent.md)."""
    directory = f"{pod.metadata.namespace}_{pod.metadata.name}_{pod.metadata.uid}"
    path = Path(stack.state_dir) / "node-agent" / "pods" / directory / "operator.log"
    return path.read_text(errors="replace") if path.exists() else ""


def peer_priorities(k8s: KubeClients, installed: Installed) -> dict[str, int]:
    """Pod name -> peering priority of every replica with a keep-alive (Kopf identities: user@host/...,
    and a pod's hostname is its name)."""
    peering = k8s.custom.get_namespaced_custom_object(
        "kopf.dev", "v1", installed.jobs, "kopfpeerings", "kubetune"
    )
    status: dict[str, Any] = peering.get("status") or {}
    return {identity.split("@", 1)[1].split("/", 1)[0]: peer["priority"] for identity, peer in status.items()}


def active_replica(k8s: KubeClients, installed: Installed) -> str:
    """Kopf peering: the live peer with the highest priority works, the others pause."""
    priorities = peer_priorities(k8s, installed)
    return max(priorities, key=lambda pod: priorities[pod])


def custom_status(k8s: KubeClients, namespace: str, plural: str, name: str) -> dict[str, Any]:
    body = k8s.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    status: dict[str, Any] = body.get("status") or {}
    return status


def finished(k8s: KubeClients, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    status = custom_status(k8s, namespace, plural, name)
    return status if status.get("phase") in ("Succeeded", "Failed") else None


def test_operator_pods_run_restricted_with_the_chart_service_account(
    k8s: KubeClients, installed: Installed, wait_for: Any
) -> None:
    pods = operator_pods(k8s, installed)
    assert len(pods) == 2
    # Admitted by PodSecurity in a namespace that enforces `restricted`.
    labels = k8s.core.read_namespace(installed.system).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for pod in pods:
        assert pod.status.phase == "Running"
        assert pod.spec.service_account_name == f"{installed.release}-kubetune"
        assert pod.spec.containers[0].security_context.read_only_root_filesystem is True
        url = f"http://{pod.status.pod_ip}:{installed.health_port}/healthz"
        status, _ = wait_for(lambda url=url: http_get(url), 60, "operator /healthz")
        assert status == 200  # a standby replica is healthy too


def test_both_replicas_join_the_peering_with_distinct_priorities(
    k8s: KubeClients, installed: Installed, wait_for: Any
) -> None:
    # Both keep-alives land in the KopfPeering: the chart's peering object and RBAC work.
    names = {pod.metadata.name for pod in operator_pods(k8s, installed)}
    priorities = wait_for(
        lambda: peer_priorities(k8s, installed) if set(peer_priorities(k8s, installed)) == names else None,
        60,
        "keep-alives of both replicas in the KopfPeering",
    )
    assert len(set(priorities.values())) == 2  # --peering-priority: random, so never a tie (a tie pauses all)
    assert min(priorities.values()) > 0


def test_finetunejob_and_evaljob_succeed_through_the_installed_operator(
    stack: LocalStack, k8s: KubeClients, installed: Installed, wait_for: Any
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

    # Only the highest-priority replica reconciled; the other stood by.
    active = active_replica(k8s, installed)
    for pod in operator_pods(k8s, installed):
        worked = f"{installed.jobs}/tune" in operator_log(stack, pod)
        assert worked is (pod.metadata.name == active), pod.metadata.name


def test_operator_metrics_pass_promtool(k8s: KubeClients, installed: Installed, wait_for: Any) -> None:
    for pod in operator_pods(k8s, installed):
        url = f"http://{pod.status.pod_ip}:{installed.metrics_port}/metrics"
        _, exposition = wait_for(lambda url=url: http_get(url), 30, "operator /metrics")
        checked = subprocess.run(
            [str(client_tool("promtool")), "check", "metrics"],
            input=exposition,
            check=False,
            capture_output=True,
            text=True,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "# TYPE kubetune_operator_jobs gauge" in exposition
        assert "# TYPE kubetune_operator_reconcile_duration_seconds histogram" in exposition


def test_standby_takes_over_when_the_active_replica_goes(
    stack: LocalStack, k8s: KubeClients, installed: Installed, wait_for: Any
) -> None:
    active = active_replica(k8s, installed)
    (standby,) = [pod for pod in operator_pods(k8s, installed) if pod.metadata.name != active]
    k8s.core.delete_namespaced_pod(active, installed.system)
    ftj = finetunejob("after-failover", '{"seconds": 1}')
    k8s.custom.create_namespaced_custom_object(GROUP, VERSION, installed.jobs, "finetunejobs", ftj)
    done = wait_for(
        lambda: finished(k8s, installed.jobs, "finetunejobs", "after-failover"),
        180,
        "FineTuneJob after failover",
    )
    assert done["phase"] == "Succeeded", done
    # A surviving replica did it: the former standby, or the Deployment's replacement pod if that joined
    # with a higher priority meanwhile.
    survivors = [standby, *[pod for pod in operator_pods(k8s, installed) if pod.metadata.name != active]]
    assert any(f"{installed.jobs}/after-failover" in operator_log(stack, pod) for pod in survivors)


def kubectl_create(stack: LocalStack, namespace: str, body: dict[str, Any], *flags: str) -> tuple[int, str]:
    """`kubectl create` of one manifest, as a user would: (exit code, what it printed)."""
    kubectl = [str(client_tool("kubectl")), "--kubeconfig", str(stack.kubeconfig)]
    result = subprocess.run(
        [*kubectl, "create", "-n", namespace, *flags, "-f", "-"],
        input=json.dumps(body),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


def test_admission_policy_refuses_jobs_outside_the_platform_policy_at_create(
    stack: LocalStack, k8s: KubeClients, installed: Installed, wait_for: Any
) -> None:
    miner = finetunejob("miner")
    miner["spec"]["image"] = "evil.example.com/miner:1"

    # A new policy takes effect once the API server has compiled it (seconds after `helm install`).
    def refused() -> tuple[int, str] | None:
        code, output = kubectl_create(stack, installed.jobs, miner, "--dry-run=server")
        return (code, output) if code != 0 else None

    code, output = wait_for(refused, 60, "the ValidatingAdmissionPolicy in force")
    policy = f"ValidatingAdmissionPolicy '{installed.release}-kubetune-jobs'"
    assert policy in output, output
    assert (
        'spec.image "evil.example.com/miner:1" is not from an allowed repository '
        f'(allowed: "kubetune/trainer", "kubetune/evaluator", "{CHECKOUT_IMAGE}")'
    ) in output
    code, output = kubectl_create(stack, installed.jobs, miner)
    assert code != 0 and "is not from an allowed repository" in output
    rogue = finetunejob("rogue")
    rogue["spec"]["podTemplate"]["serviceAccountName"] = "default"
    code, output = kubectl_create(stack, installed.jobs, rogue)
    assert code != 0 and policy in output
    assert (
        'spec.podTemplate.serviceAccountName "default" is not allowed (allowed: "", "kubetune-workload")'
        in output
    )
    judge = evaljob("judge", {"uri": "s3://models/base/"})
    judge["spec"]["image"] = "kubetune/evaluator-debug:1"
    code, output = kubectl_create(stack, installed.jobs, judge)
    assert code != 0 and 'spec.image "kubetune/evaluator-debug:1"' in output
    big = finetunejob("big", resources={"nodes": 2, "gpusPerNode": 8})
    code, output = kubectl_create(stack, installed.jobs, big)
    assert code != 0 and "spec.resources: 16 GPUs is over the limit of 8 per job" in output
    # Nothing was stored, so the operator never saw them.
    for plural, name in (
        ("finetunejobs", "miner"),
        ("finetunejobs", "rogue"),
        ("evaljobs", "judge"),
        ("finetunejobs", "big"),
    ):
        listed = k8s.custom.list_namespaced_custom_object(GROUP, VERSION, installed.jobs, plural)["items"]
        assert name not in {item["metadata"]["name"] for item in listed}
    # Inside the policy: the chart's trainer image by tag and by digest, the workload ServiceAccount.
    allowed = finetunejob("allowed")
    allowed["spec"]["image"] = "kubetune/trainer@sha256:" + "0" * 64
    allowed["spec"]["podTemplate"]["serviceAccountName"] = "kubetune-workload"
    code, output = kubectl_create(stack, installed.jobs, allowed)
    assert code == 0, output
