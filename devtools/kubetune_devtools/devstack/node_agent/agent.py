"""The agent's loop: register nodes, heartbeat, and run the pods bound to them as local processes.

One thread owns all state: the informer thread only queues pod events, and the loop wakes at least
every TICK_SECONDS to reap processes, start due containers and patch changed statuses — cheap with
hundreds of pods, and no locks.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time

from kubetune_devtools.devstack.node_agent import dns, node_lifecycle, pod_tracking
from kubetune_devtools.devstack.node_agent.config import AgentConfig
from kubetune_devtools.devstack.node_agent.kube import Kube, PodEvent, PodInformer
from kubetune_devtools.devstack.node_agent.log_endpoint import start_kubelet_endpoints
from kubetune_devtools.devstack.node_agent.orphans import stop_orphans
from kubetune_devtools.devstack.node_agent.pod_lifecycle import step
from kubetune_devtools.devstack.node_agent.pod_runtime import PodRuntime
from kubetune_devtools.devstack.node_agent.process import signal_group
from kubetune_devtools.devstack.node_agent.python_access import grant_search_access
from kubetune_devtools.devstack.node_agent.state import AgentState

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
SHUTDOWN_GRACE_SECONDS = 10.0


class NodeAgent:
    def __init__(self, config: AgentConfig, kube: Kube) -> None:
        self.state = AgentState.create(config, kube)
        self.events: queue.Queue[PodEvent] = queue.Queue()
        self.stopping = threading.Event()
        self.informer = PodInformer(kube, self.events)

    def run(self) -> None:
        config = self.state.config
        config.pods_dir.mkdir(parents=True, exist_ok=True)
        stop_orphans(config.pods_dir)
        python = config.python_bin_dir / "python3"
        grant_search_access([python, python.resolve() if python.exists() else python])
        node_lifecycle.register_nodes(self.state, self.stopping)
        endpoints = start_kubelet_endpoints(self.state)
        self.informer.start()
        next_heartbeat = time.monotonic() + config.heartbeat_seconds
        while not self.stopping.is_set():
            self._drain_events()
            for runtime in list(self.state.pods.values()):
                self._step_safely(runtime)
            if self.state.hosts_dirty:
                dns.refresh_hosts_files(self.state)
            if time.monotonic() >= next_heartbeat:
                node_lifecycle.heartbeat(self.state)
                next_heartbeat = time.monotonic() + config.heartbeat_seconds
        if endpoints is not None:
            endpoints.stop()
        self.shutdown()

    def _drain_events(self) -> None:
        try:
            event = self.events.get(timeout=TICK_SECONDS)
        except queue.Empty:
            return
        while True:
            try:
                pod_tracking.handle_event(self.state, event)
            except Exception:  # e.g. the API server restarting; the next event or resync catches up
                log.exception("handling a %s pod event failed", event.kind)
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return

    def _step_safely(self, runtime: PodRuntime) -> None:
        try:
            step(self.state, runtime)
        except Exception:  # one odd pod must not stop the node
            log.exception("pod %s/%s: step failed; retrying", runtime.namespace, runtime.name)

    def stop(self, *_: object) -> None:
        self.stopping.set()

    def shutdown(self) -> None:
        """Stop every container (SIGTERM, then SIGKILL after a short grace); statuses are left as they are."""
        self.informer.stop()
        running = [(r, p) for r in self.state.pods.values() for p in r.processes.values()]
        for _, process in running:
            signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + min([SHUTDOWN_GRACE_SECONDS, *(r.grace_seconds() for r, _ in running)])
        while time.monotonic() < deadline and any(p.poll() is None for _, p in running):
            time.sleep(0.1)
        for _, process in running:
            signal_group(process.pid, signal.SIGKILL)
            process.wait()
        # Every container of an image is gone: its read-only mount can go too (podman counts mounts).
        self.state.images.unmount_all()
        log.info("node agent stopped (%d containers stopped)", len(running))
