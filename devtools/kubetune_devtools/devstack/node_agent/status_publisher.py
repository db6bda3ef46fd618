"""Publishing a pod's status to the API server, only when what it is built from changed."""

from __future__ import annotations

import logging

from kubernetes.client.exceptions import ApiException

from kubetune_devtools.devstack.node_agent import status
from kubetune_devtools.devstack.node_agent.kube import HTTP_NOT_FOUND
from kubetune_devtools.devstack.node_agent.pod_runtime import PodRuntime, utcnow
from kubetune_devtools.devstack.node_agent.state import AgentState
from kubetune_devtools.devstack.node_agent.status import PodView

log = logging.getLogger(__name__)


def publish_status(state: AgentState, runtime: PodRuntime) -> None:
    """Patch the pod's status; a pod ended with no process left turns terminal and frees its IP."""
    signature = runtime.signature()
    if runtime.last_status is not None and signature == runtime.last_signature:
        return
    view = PodView(
        restart_policy=runtime.spec.get("restartPolicy", "Always"),
        host_ip=runtime.host_ip,
        pod_ip=runtime.ip,
        start_time=runtime.start_time,
        init=runtime.init,
        main=runtime.main,
        failure_reason=runtime.failure_reason,
        failure_message=runtime.failure_message,
    )
    previous = (runtime.last_status or runtime.pod.get("status") or {}).get("conditions") or []
    new_status = status.build_pod_status(view, previous, utcnow())
    if new_status == runtime.last_status:
        runtime.last_signature = signature
        return
    try:
        state.kube.patch_pod_status(runtime.namespace, runtime.name, new_status)
    except ApiException as error:
        if error.status == HTTP_NOT_FOUND:
            return
        log.warning("pod %s/%s: status patch failed: %s", runtime.namespace, runtime.name, error.reason)
        return
    runtime.last_status = new_status
    runtime.last_signature = signature
    if new_status["phase"] in ("Succeeded", "Failed") and not runtime.processes:
        runtime.terminal = True
        if runtime.ip:
            state.ipam.release(runtime.ip)
            state.hosts_dirty = True
