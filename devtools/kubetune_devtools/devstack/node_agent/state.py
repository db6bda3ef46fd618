"""What the agent knows, shared by its modules: settings, the API client, the local image store, the
pods it runs and the cluster's pods (for DNS), IP and memory-cgroup allocators; and the one way it posts
a pod Event.

Only the loop's thread touches it (the kubelet endpoint's threads only read `pods`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubetune_devtools.devstack.node_agent import events
from kubetune_devtools.devstack.node_agent.config import AgentConfig
from kubetune_devtools.devstack.node_agent.images import LocalImageStore
from kubetune_devtools.devstack.node_agent.ipam import LoopbackIPAllocator
from kubetune_devtools.devstack.node_agent.kube import Kube
from kubetune_devtools.devstack.node_agent.memory_limits import MemoryCgroups
from kubetune_devtools.devstack.node_agent.pod_runtime import PodRuntime, utcnow


@dataclass
class AgentState:
    config: AgentConfig
    kube: Kube
    node_names: set[str]
    ipam: LoopbackIPAllocator
    memory: MemoryCgroups = field(default_factory=MemoryCgroups)
    images: LocalImageStore = field(default_factory=LocalImageStore)
    pods: dict[str, PodRuntime] = field(default_factory=dict)  # by uid: the pods bound to its nodes
    cluster_pods: dict[str, dict[str, Any]] = field(default_factory=dict)  # by uid: every pod (DNS)
    hosts_dirty: bool = False  # a pod address came or went: rewrite the hosts files

    @classmethod
    def create(cls, config: AgentConfig, kube: Kube) -> AgentState:
        return cls(config, kube, set(config.node_names()), LoopbackIPAllocator(config.pod_cidr))

    def post_event(
        self,
        runtime: PodRuntime,
        reason: str,
        message: str,
        *,
        warning: bool = False,
        container: str | None = None,
    ) -> None:
        kind = events.WARNING if warning else events.NORMAL
        node = runtime.spec["nodeName"]
        self.kube.post_event(
            events.build_event(
                runtime.pod, node, reason, message, kind=kind, container=container, now=utcnow()
            )
        )
