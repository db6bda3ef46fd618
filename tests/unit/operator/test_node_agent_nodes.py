"""Node objects: capacity with GPUs, Ready, addresses, taint removal, Lease."""

from datetime import UTC, datetime
from pathlib import Path

from kubetune_devtools.devstack.node_agent.config import AgentConfig
from kubetune_devtools.devstack.node_agent.nodes import (
    build_lease,
    build_node,
    build_node_status,
    without_not_ready_taints,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = AgentConfig(kubeconfig=Path("/k"), state_dir=Path("/tmp/kt-state/node-agent"), gpus=4, memory="64Gi")


def test_nodes_are_named_and_labelled_by_prefix() -> None:
    assert CONFIG.node_names() == ["kt-node-0", "kt-node-1"]
    labels = build_node(CONFIG, "kt-node-1")["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "kt-node-1"
    assert labels["kubetune.io/node-agent"] == "kt-node"  # how a later agent finds nodes it no longer runs


def test_status_is_ready_with_configured_capacity_and_own_address() -> None:
    status = build_node_status(CONFIG, "kt-node-1", NOW)
    assert status["capacity"]["nvidia.com/gpu"] == "4"
    assert status["allocatable"]["memory"] == "64Gi"
    assert status["allocatable"]["cpu"] == "8"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["lastHeartbeatTime"]) == ("True", "2026-01-01T00:00:00Z")
    internal = next(a["address"] for a in status["addresses"] if a["type"] == "InternalIP")
    assert internal == CONFIG.node_address("kt-node-1")
    assert internal.startswith("127.1.") and internal.endswith(".2")
    assert internal != CONFIG.node_address("kt-node-0")
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250


def test_only_not_ready_taints_are_removed() -> None:
    keep = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    taints = [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}, keep]
    assert without_not_ready_taints(taints) == [keep]
    assert without_not_ready_taints([keep]) is None  # nothing to patch
    assert without_not_ready_taints(None) is None


def test_lease_is_owned_by_its_node() -> None:
    lease = build_lease("kt-node-0", "uid-0", NOW)
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-0"
    assert lease["spec"]["holderIdentity"] == "kt-node-0"
    assert lease["spec"]["renewTime"] == "2026-01-01T00:00:00.000000Z"
