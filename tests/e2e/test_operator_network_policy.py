"""The per-job NetworkPolicy on a real API server: the operator creates it (accepted by the server's
validation), owned by the job, selecting exactly the job's pods, with the chart's metricsFrom peers on
the progress port; it is garbage-collected with the job.

The local stack has no CNI and cannot enforce NetworkPolicy (docs/deploy.md): what traffic it blocks is
not tested here, only the object the enforcing CNI of a real cluster would read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import (
    Objects,
    OperatorProcess,
    evaljob,
    finetunejob,
    wait_until,
)
from kubetune_operator.api import GROUP, VERSION

pytestmark = pytest.mark.e2e
NAMESPACE_GLOB = "t-test-netpol-*"
OPERATOR_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubetune-system"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}},
}
PROMETHEUS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


@pytest.fixture(scope="module")
def operator(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(stack.kubeconfig, log, namespaces=[NAMESPACE_GLOB])
    with pytest.MonkeyPatch.context() as env:
        # What the chart passes (templates/deployment.yaml); the subprocess inherits it.
        env.setenv("KUBETUNE_NETWORK_POLICY", "true")
        env.setenv("KUBETUNE_NETWORK_POLICY_METRICS_FROM", json.dumps([OPERATOR_PEER, PROMETHEUS_PEER]))
        process.start()
    yield process
    process.stop()
    print(process.log_tail(40))


@pytest.fixture
def networking(k8s: KubeClients) -> client.NetworkingV1Api:
    return client.NetworkingV1Api(k8s.api_client)


def _policy(networking: client.NetworkingV1Api, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found = networking.read_namespaced_network_policy(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    # The model's snake_case attributes back to the API's JSON (what the server stored).
    policy: dict[str, Any] = client.ApiClient().sanitize_for_serialization(found)
    return policy


def test_netpol_finetunejob_gets_a_policy_owned_by_it_selecting_its_pods(
    k8s: KubeClients, namespace: str, operator: OperatorProcess, networking: client.NetworkingV1Api
) -> None:
    objects = Objects(k8s.api_client, namespace)
    objects.create(finetunejob("gang", json.dumps({"seconds": 30}), resources={"nodes": 2}))
    policy = wait_until(
        lambda: _policy(networking, namespace, "gang-config"), 60, "NetworkPolicy gang-config"
    )
    job = objects.get("finetunejobs", "gang") or {}
    (owner,) = policy["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("FineTuneJob", job["metadata"]["uid"], True)
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector == {"kubetune.io/job-name": "gang", "kubetune.io/kind": "FineTuneJob"}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    own, scrapers = policy["spec"]["ingress"]
    assert own == {"from": [{"podSelector": {"matchLabels": selector}}]}
    assert scrapers["from"] == [OPERATOR_PEER, PROMETHEUS_PEER]
    assert scrapers["ports"] == [{"protocol": "TCP", "port": 9400}]
    # The selector matches both of the gang's pods, whatever else runs in the namespace.
    label_selector = ",".join(f"{key}={value}" for key, value in selector.items())

    def both_pods() -> list[Any] | None:
        pods = objects.core.list_namespaced_pod(namespace, label_selector=label_selector).items
        return list(pods) if len(pods) == 2 else None

    pods = wait_until(both_pods, 60, "the gang's two pods")
    assert {pod.metadata.labels["kubetune.io/job-name"] for pod in pods} == {"gang"}
    # Garbage-collected with its owner (kube-controller-manager), like the other children.
    k8s.custom.delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "finetunejobs", "gang", propagation_policy="Foreground"
    )
    wait_until(lambda: _policy(networking, namespace, "gang-config") is None or None, 60, "policy deleted")


def test_netpol_evaljob_gets_its_own_policy(
    k8s: KubeClients, namespace: str, operator: OperatorProcess, networking: client.NetworkingV1Api
) -> None:
    objects = Objects(k8s.api_client, namespace)
    objects.create(evaljob("gang", {"uri": "s3://models/base/"}, json.dumps({"seconds": 30})))
    policy = wait_until(lambda: _policy(networking, namespace, "gang-eval"), 60, "NetworkPolicy gang-eval")
    assert policy["metadata"]["ownerReferences"][0]["kind"] == "EvalJob"
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "kubetune.io/job-name": "gang",
        "kubetune.io/kind": "EvalJob",
    }
