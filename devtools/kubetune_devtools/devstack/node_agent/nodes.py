"""Node and Lease objects of the agent's nodes (pure builders; the agent applies them)."""

from __future__ import annotations

import platform
from datetime import datetime
from typing import Any

from kubetune_devtools.devstack.node_agent.config import KUBELET_PORT, AgentConfig
from kubetune_devtools.devstack.node_agent.status import rfc3339

NOT_READY_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
AGENT_LABEL = "kubetune.io/node-agent"  # value: the node prefix, to find this agent's nodes
AGENT_VERSION = "v1.36.0-kubetune-node-agent"


def node_resources(config: AgentConfig) -> dict[str, str]:
    return {
        "cpu": config.cpu,
        "memory": config.memory,
        "pods": str(config.max_pods),
        "ephemeral-storage": "100Gi",
        config.gpu_resource: str(config.gpus),
    }


def build_node(config: AgentConfig, name: str) -> dict[str, Any]:
    """The Node as first registered (status is patched right after: create ignores it)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                AGENT_LABEL: config.node_prefix,
            },
        },
        "spec": {},
    }


def build_node_status(config: AgentConfig, name: str, now: datetime) -> dict[str, Any]:
    """A Ready node with the configured capacity; sent on every heartbeat."""
    stamp = rfc3339(now)
    healthy = [
        ("MemoryPressure", "KubeletHasSufficientMemory"),
        ("DiskPressure", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "KubeletHasSufficientPID"),
    ]
    conditions = [
        {"type": kind, "status": "False", "reason": reason, "message": reason, "lastHeartbeatTime": stamp}
        for kind, reason in healthy
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubetune node agent is posting ready status",
            "lastHeartbeatTime": stamp,
        }
    )
    return {
        "capacity": node_resources(config),
        "allocatable": node_resources(config),
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": config.node_address(name)},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        "nodeInfo": {
            "machineID": name,
            "systemUUID": name,
            "bootID": name,
            "kernelVersion": platform.release(),
            "osImage": "kubetune node agent (local processes)",
            "containerRuntimeVersion": "local-process://0",
            "kubeletVersion": AGENT_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def without_not_ready_taints(taints: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """The node's taints less the not-ready/unreachable ones; None when there is nothing to remove."""
    current = taints or []
    kept = [t for t in current if t.get("key") not in NOT_READY_TAINTS]
    return kept if len(kept) != len(current) else None


def build_lease(name: str, node_uid: str, now: datetime) -> dict[str, Any]:
    micro = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}],
        },
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro},
    }
