"""The agent's Nodes through their life: registered at start, stale ones deleted, kept Ready by heartbeats."""

from __future__ import annotations

import logging
import threading

from kubetune_devtools.devstack.node_agent import nodes
from kubetune_devtools.devstack.node_agent.pod_runtime import utcnow
from kubetune_devtools.devstack.node_agent.state import AgentState
from kubetune_devtools.devstack.node_agent.version import CODE_ANNOTATION, code_fingerprint

log = logging.getLogger(__name__)


def register_nodes(state: AgentState, stopping: threading.Event) -> None:
    """Create the Node objects, waiting for the API server if it is not serving yet."""
    for name in sorted(state.node_names):
        while not stopping.is_set():
            try:
                state.kube.create_node(nodes.build_node(state.config, name))
                break
            except Exception as error:  # connection refused while the API server starts
                log.warning("registering node %s failed (%s); retrying", name, error)
                stopping.wait(1.0)
        log.info("node %s registered", name)
    for name in sorted(state.node_names):
        try:  # which code runs this node (a re-registered Node keeps its old metadata otherwise)
            state.kube.annotate_node(name, {CODE_ANNOTATION: code_fingerprint()})
        except Exception as error:
            log.warning("could not annotate node %s: %s", name, error)
    remove_stale_nodes(state)
    heartbeat(state)


def remove_stale_nodes(state: AgentState) -> None:
    """Nodes an earlier agent with more --nodes registered: without a node lifecycle controller they
    would stay Ready for ever and the scheduler would bind pods nobody runs."""
    try:
        mine = state.kube.node_names(f"{nodes.AGENT_LABEL}={state.config.node_prefix}")
        for name in sorted(set(mine) - state.node_names):
            state.kube.delete_node(name)
            log.warning("deleted node %s: this agent runs only %s", name, sorted(state.node_names))
    except Exception as error:  # an optional cleanup: never fatal
        log.warning("could not check for stale nodes: %s", error)


def heartbeat(state: AgentState) -> None:
    """Node status (Ready, capacity, heartbeat time), not-ready taints removed, Lease renewed."""
    now = utcnow()
    for name in sorted(state.node_names):
        try:
            node = state.kube.patch_node_status(name, nodes.build_node_status(state.config, name, now))
            kept = nodes.without_not_ready_taints(node.get("spec", {}).get("taints"))
            if kept is not None:
                state.kube.set_node_taints(name, kept)
            state.kube.renew_lease(nodes.build_lease(name, node["metadata"]["uid"], now))
        except Exception as error:  # a missed heartbeat is retried on the next one
            log.warning("heartbeat of node %s failed: %s", name, error)
