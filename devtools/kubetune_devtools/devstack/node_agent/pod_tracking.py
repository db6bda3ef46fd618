"""Which pods the agent runs: informer events (added, modified, deleted, a full resync) become new
pod runtimes, updated pod objects, or forgotten pods; every pod is kept for DNS."""

from __future__ import annotations

import logging
import signal
from typing import Any

from kubetune_devtools.devstack.node_agent import status
from kubetune_devtools.devstack.node_agent.kube import PodEvent
from kubetune_devtools.devstack.node_agent.memory_limits import MemoryCgroups
from kubetune_devtools.devstack.node_agent.pod_lifecycle import after_exit
from kubetune_devtools.devstack.node_agent.pod_runtime import (
    PodRuntime,
    is_terminal,
    parse_time,
    records_after_restart,
    utcnow,
)
from kubetune_devtools.devstack.node_agent.process import PodPaths, signal_group
from kubetune_devtools.devstack.node_agent.state import AgentState

log = logging.getLogger(__name__)


def handle_event(state: AgentState, event: PodEvent) -> None:
    if event.kind == "RESYNC":
        listed = {p["metadata"]["uid"]: p for p in event.pods or []}
        for uid in set(state.pods) - set(listed):
            forget(state, state.pods[uid])
        state.cluster_pods = listed
        state.hosts_dirty = True
        for pod in listed.values():
            upsert(state, pod)
        return
    assert event.pod is not None
    uid = event.pod["metadata"]["uid"]
    if event.kind == "DELETED":
        state.cluster_pods.pop(uid, None)
        if uid in state.pods:
            forget(state, state.pods[uid])
        state.hosts_dirty = True
        return
    before = state.cluster_pods.get(uid, {}).get("status", {}).get("podIP")
    state.cluster_pods[uid] = event.pod
    if event.pod.get("status", {}).get("podIP") != before:
        state.hosts_dirty = True
    upsert(state, event.pod)


def upsert(state: AgentState, pod: dict[str, Any]) -> None:
    if pod.get("spec", {}).get("nodeName") not in state.node_names:
        return
    uid = pod["metadata"]["uid"]
    runtime = state.pods.get(uid)
    if runtime is not None:
        runtime.pod = pod
        return
    if is_terminal(pod):
        if pod["metadata"].get("deletionTimestamp"):
            state.kube.confirm_pod_deletion(pod["metadata"]["namespace"], pod["metadata"]["name"], uid)
        return
    state.pods[uid] = new_runtime(state, pod)


def new_runtime(state: AgentState, pod: dict[str, Any]) -> PodRuntime:
    """A pod newly bound here, or found at start-up: containers the last agent ran count as lost."""
    metadata, spec, previous = pod["metadata"], pod["spec"], pod.get("status") or {}
    runtime = PodRuntime(
        pod=pod,
        paths=PodPaths.for_pod(
            state.config.pods_dir, metadata["namespace"], metadata["name"], metadata["uid"]
        ),
        host_ip=state.config.node_address(spec["nodeName"]),
        start_time=parse_time(previous.get("startTime")) or utcnow(),
        init=records_after_restart(
            spec.get("initContainers") or [], previous.get("initContainerStatuses") or []
        ),
        main=records_after_restart(spec["containers"], previous.get("containerStatuses") or []),
    )
    if previous.get("podIP"):
        runtime.ip = previous["podIP"]
        state.ipam.reserve(previous["podIP"])
    if runtime.init:
        for record in runtime.main:
            if record.state == "waiting":
                record.reason = status.POD_INITIALIZING
    for record in [*runtime.init, *runtime.main]:  # restartPolicy applies to the lost containers too
        if record.state == "terminated" and record.terminated is not None:
            after_exit(state, runtime, record, is_init=record in runtime.init)
    log.info("pod %s/%s bound to %s", metadata["namespace"], metadata["name"], spec["nodeName"])
    return runtime


def forget(state: AgentState, runtime: PodRuntime) -> None:
    """The pod is gone from the API: kill what is left, free its IP, drop its files (logs stay)."""
    for process in runtime.processes.values():
        signal_group(process.pid, signal.SIGKILL)
        process.wait()
    if runtime.ip:
        state.ipam.release(runtime.ip)
    runtime.paths.remove_pod_files()
    for group in runtime.cgroups.values():
        MemoryCgroups.remove(group)
    state.pods.pop(runtime.uid, None)
    state.hosts_dirty = True
