"""Two trainer pods on two nodes under the real `accelerate launch` (torch elastic static rendezvous
through rank 0's DNS name): every process gets its global rank, the world size and rank 0's address."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import Objects, OperatorProcess, finetunejob, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def accelerate_operator(stack: LocalStack, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    # Named test_accelerate_*: outside the lifecycle module's `t-test-operator-*` glob.
    process = OperatorProcess(stack.kubeconfig, tmp_path / "operator.log", [namespace], launcher="accelerate")
    yield process.start()
    process.stop()
    print(process.log_tail(60))


def test_accelerate_two_nodes_rendezvous_with_ranks_and_master_address(
    k8s: KubeClients, namespace: str, accelerate_operator: OperatorProcess
) -> None:
    objects = Objects(k8s.api_client, namespace)
    objects.create(finetunejob("gang", json.dumps({"seconds": 1}), resources={"nodes": 2}))
    status = wait_until(
        lambda: (
            s
            if (s := objects.status("finetunejobs", "gang")).get("phase") in ("Succeeded", "Failed")
            else None
        ),
        120,
        "the accelerate gang to finish",
    )
    assert status["phase"] == "Succeeded", status
    pods = sorted(objects.pods("gang"), key=lambda p: p.metadata.name)
    assert len({pod.spec.node_name for pod in pods}) == 2
    command = pods[0].spec.containers[0].command
    assert command[:2] == ["accelerate", "launch"] and "--multi_gpu" in command
    identities: list[dict[str, Any]] = [
        json.loads(pod.status.container_statuses[0].state.terminated.message)["result"]["identity"]
        for pod in pods
    ]
    assert [i["RANK"] for i in identities] == ["0", "1"]
    assert {i["WORLD_SIZE"] for i in identities} == {"2"}
    assert {i["MASTER_ADDR"] for i in identities} == {"gang-r0-0.gang"}
    assert {i["MASTER_PORT"] for i in identities} == {"29500"}
