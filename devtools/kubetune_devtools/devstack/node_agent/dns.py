"""Pod DNS: each pod's /etc/hosts maps its own and its peers' `hostname.subdomain` names.

Networking: pods share this machine's network namespace, each with its own 127.64.x.y address and
a private mount namespace whose /etc/hosts maps peers' DNS names. Per-pod network namespaces with
veth pairs were rejected: the local stack's API server, S3 and Prometheus listen on 127.0.0.1, which
a pod in its own network namespace could not reach. The cost: two pods binding the same port on
0.0.0.0 collide (binding the pod's own IP, as gloo/NCCL do through the hostname, does not).
"""

from __future__ import annotations

from kubetune_devtools.devstack.node_agent import hosts
from kubetune_devtools.devstack.node_agent.pod_files import write_in_place
from kubetune_devtools.devstack.node_agent.pod_runtime import PodRuntime, is_terminal
from kubetune_devtools.devstack.node_agent.state import AgentState


def pod_addresses(state: AgentState) -> list[hosts.PodAddress]:
    """Every live pod with a subdomain: the cluster's, and this agent's own (which it knows first)."""
    known: dict[str, hosts.PodAddress] = {}
    for uid, pod in state.cluster_pods.items():
        if pod.get("spec", {}).get("subdomain") and not is_terminal(pod):
            record = hosts.pod_address(pod)
            if record is not None:
                known[uid] = record
    for uid, runtime in state.pods.items():
        if runtime.terminal:
            known.pop(uid, None)
        elif runtime.ip and runtime.spec.get("subdomain"):
            known[uid] = hosts.PodAddress(
                runtime.namespace, hosts.pod_hostname(runtime.pod), runtime.spec["subdomain"], runtime.ip
            )
    return list(known.values())


def hosts_file(state: AgentState, runtime: PodRuntime, peers: list[hosts.PodAddress] | None = None) -> str:
    assert runtime.ip is not None
    own = hosts.PodAddress(
        runtime.namespace,
        hosts.pod_hostname(runtime.pod),
        runtime.spec.get("subdomain") or "",
        runtime.ip,
    )
    return hosts.render_hosts_file(own, pod_addresses(state) if peers is None else peers)


def refresh_hosts_files(state: AgentState) -> None:
    """Rewrite hosts files in place as peers come and go, so a pod can resolve a peer started after it."""
    state.hosts_dirty = False
    peers = pod_addresses(state)
    for runtime in state.pods.values():
        if runtime.ip and not runtime.terminal and runtime.paths.hosts.exists():
            write_in_place(runtime.paths.hosts, hosts_file(state, runtime, peers))
