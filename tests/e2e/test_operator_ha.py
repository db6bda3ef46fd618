"""HA: two operator replicas with Kopf peering; only the higher-priority one acts, the other takes over
when it leaves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import (
    Objects,
    OperatorProcess,
    finetunejob,
    install_peering,
    wait_until,
)

pytestmark = pytest.mark.e2e


def _succeeded(objects: Objects, name: str) -> bool:
    return objects.status("finetunejobs", name).get("phase") == "Succeeded"


def test_ha_only_the_leader_acts_and_the_standby_takes_over(
    stack: LocalStack, k8s: KubeClients, namespace: str, tmp_path: Path
) -> None:
    install_peering(k8s.api_client, namespace)
    objects = Objects(k8s.api_client, namespace)
    leader = OperatorProcess(
        stack.kubeconfig, tmp_path / "leader.log", [namespace], peering="kubetune", priority=200
    )
    standby = OperatorProcess(
        stack.kubeconfig, tmp_path / "standby.log", [namespace], peering="kubetune", priority=100
    )
    leader.start()
    try:
        # The leader registers in the peering object first; the standby then finds it there and pauses.
        wait_until(lambda: "Resuming operations" in leader.log_tail(200), 30, "leader to start acting")
        standby.start()
        # Kopf starts a peered replica paused; it resumes only when no higher-priority peer is alive.
        wait_until(lambda: "Initial authentication has finished" in standby.log_tail(200), 30, "standby up")
        objects.create(finetunejob("ha-one", json.dumps({"seconds": 0.5})))
        wait_until(lambda: _succeeded(objects, "ha-one"), 40, "ha-one to succeed")
        # Per-object handler logs come from the `kopf.objects` logger: the paused standby has none.
        assert "kopf.objects" in leader.log_tail(400)
        assert "kopf.objects" not in standby.log_tail(400)
        assert "Resuming operations" not in standby.log_tail(400)
        leader.stop()  # graceful: it leaves the peering object, the standby resumes at once
        wait_until(lambda: "Resuming operations" in standby.log_tail(200), 60, "standby to resume")
        objects.create(finetunejob("ha-two", json.dumps({"seconds": 0.5})))
        wait_until(lambda: _succeeded(objects, "ha-two"), 40, "ha-two to succeed via the standby")
        assert "kopf.objects" in standby.log_tail(400)
    finally:
        leader.stop()
        standby.stop()
