"""`kubectl logs` for the agent's pods: finds each container's log file for the kubelet endpoint."""

from __future__ import annotations

import logging
from pathlib import Path

from kubetune_devtools.devstack.node_agent.config import KUBELET_PORT
from kubetune_devtools.devstack.node_agent.kubelet_server import KubeletEndpoints, endpoint_tls
from kubetune_devtools.devstack.node_agent.pod_runtime import PodRuntime
from kubetune_devtools.devstack.node_agent.process import PodPaths
from kubetune_devtools.devstack.node_agent.state import AgentState

log = logging.getLogger(__name__)


class PodLogLocator:
    """The endpoint's view of the agent's pods (a `kubelet_server.LogLocator`)."""

    def __init__(self, state: AgentState) -> None:
        self._state = state

    def _runtime_named(self, namespace: str, pod: str) -> PodRuntime | None:
        # Called from the endpoint's threads: list() copies the values atomically under the GIL.
        return next(
            (r for r in list(self._state.pods.values()) if (r.namespace, r.name) == (namespace, pod)), None
        )

    def log_file(self, namespace: str, pod: str, container: str, previous: bool) -> Path | None:
        runtime = self._runtime_named(namespace, pod)
        if runtime is not None:
            root = runtime.paths.root
        else:  # a pod the agent no longer tracks: its newest directory of that name
            candidates = sorted(
                self._state.config.pods_dir.glob(f"{namespace}_{pod}_*"), key=lambda p: p.stat().st_mtime
            )
            if not candidates:
                return None
            root = candidates[-1]
        paths = PodPaths(root)
        return paths.previous_log(container) if previous else paths.log(container)

    def is_running(self, namespace: str, pod: str, container: str) -> bool:
        runtime = self._runtime_named(namespace, pod)
        return runtime is not None and container in runtime.processes


def start_kubelet_endpoints(state: AgentState) -> KubeletEndpoints | None:
    """Serve `kubectl logs`; pods run without it if it cannot start (it is a convenience)."""
    config = state.config
    addresses = [config.node_address(n) for n in sorted(state.node_names)]
    try:
        tls = endpoint_tls(
            config.state_dir, (*addresses, *sorted(state.node_names)), config.state_dir / "pki"
        )
    except (OSError, ValueError, TypeError) as error:  # no stack CA here, or one not made by devstack.pki
        # Without the CA that signed the API server's client certificate nobody could be let in.
        log.warning("kubelet log endpoint not started: the stack's CA is not usable (%s)", error)
        return None
    try:
        endpoints = KubeletEndpoints(PodLogLocator(state), tls)
    except Exception:
        log.exception("the kubelet log endpoint could not start; kubectl logs will not work")
        return None
    for address in addresses:
        endpoints.serve(address, KUBELET_PORT)
    return endpoints
