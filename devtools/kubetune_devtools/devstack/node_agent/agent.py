"""The agent's loop: register nodes, heartbeat, and run the pods bound to them as local processes.

One thread owns all state: the informer thread only queues pod events, and the loop wakes at least
every TICK_SECONDS to reap processes, start due containers and patch changed statuses — cheap with
hundreds of pods, and no locks.

Networking: pods share this machine's network namespace, each with its own 127.64.x.y address and
a private mount namespace whose /etc/hosts maps peers' DNS names. Per-pod network namespaces with
veth pairs were rejected: the local stack's API server, S3 and Prometheus listen on 127.0.0.1, which
a pod in its own network namespace could not reach. The cost: two pods binding the same port on
0.0.0.0 collide (binding the pod's own IP, as gloo/NCCL do through the hostname, does not).
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubetune_devtools.devstack.node_agent import events, hosts, nodes, status
from kubetune_devtools.devstack.node_agent.config import KUBELET_PORT, AgentConfig
from kubetune_devtools.devstack.node_agent.env import (
    ContainerConfigError,
    container_argv,
    parse_quantity,
    resolve_env,
)
from kubetune_devtools.devstack.node_agent.ipam import LoopbackIPAllocator
from kubetune_devtools.devstack.node_agent.kube import (
    HTTP_NOT_FOUND,
    Kube,
    PodEvent,
    PodInformer,
)
from kubetune_devtools.devstack.node_agent.kubelet_server import KubeletEndpoints, serving_certificate
from kubetune_devtools.devstack.node_agent.memory_limits import MemoryCgroups
from kubetune_devtools.devstack.node_agent.orphans import PID_FILE, record_process, stop_orphans
from kubetune_devtools.devstack.node_agent.pod_files import write_in_place, write_volume
from kubetune_devtools.devstack.node_agent.pod_runtime import (
    PodRuntime,
    is_terminal,
    parse_time,
    records_after_restart,
    utcnow,
)
from kubetune_devtools.devstack.node_agent.process import (
    DEFAULT_TERMINATION_MESSAGE_PATH,
    SYSTEM_PATH,
    PodPaths,
    build_launch_spec,
    signal_group,
    start_process,
    termination_message,
    user_of,
)
from kubetune_devtools.devstack.node_agent.python_access import grant_search_access
from kubetune_devtools.devstack.node_agent.status import ContainerRecord, PodView, Terminated
from kubetune_devtools.devstack.node_agent.version import CODE_ANNOTATION, code_fingerprint
from kubetune_devtools.devstack.node_agent.volumes import BindMount, container_mounts, plan_volume

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
CONFIG_RETRY_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 300.0
SHUTDOWN_GRACE_SECONDS = 10.0
POD_HOME = "/home/kubetune"  # each pod's own writable HOME, bind-mounted from its directory


class NodeAgent:
    def __init__(self, config: AgentConfig, kube: Kube) -> None:
        self.config = config
        self.kube = kube
        self.node_names = set(config.node_names())
        self.events: queue.Queue[PodEvent] = queue.Queue()
        self.stopping = threading.Event()
        self.ipam = LoopbackIPAllocator(config.pod_cidr)
        self.pods: dict[str, PodRuntime] = {}
        self.cluster_pods: dict[str, dict[str, Any]] = {}
        self.hosts_dirty = False
        self.informer = PodInformer(kube, self.events)
        self.memory = MemoryCgroups()

    # --- loop ------------------------------------------------------------------------------------
    def run(self) -> None:
        self.config.pods_dir.mkdir(parents=True, exist_ok=True)
        stop_orphans(self.config.pods_dir)
        python = self.config.python_bin_dir / "python3"
        grant_search_access([python, python.resolve() if python.exists() else python])
        self.register_nodes()
        endpoints = self.start_kubelet_endpoints()
        self.informer.start()
        next_heartbeat = time.monotonic() + self.config.heartbeat_seconds
        while not self.stopping.is_set():
            self._drain_events()
            for runtime in list(self.pods.values()):
                self._step_safely(runtime)
            if self.hosts_dirty:
                self.refresh_hosts_files()
            if time.monotonic() >= next_heartbeat:
                self.heartbeat()
                next_heartbeat = time.monotonic() + self.config.heartbeat_seconds
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
                self.handle_event(event)
            except Exception:  # e.g. the API server restarting; the next event or resync catches up
                log.exception("handling a %s pod event failed", event.kind)
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return

    def _step_safely(self, runtime: PodRuntime) -> None:
        try:
            self.step(runtime)
        except Exception:  # one odd pod must not stop the node
            log.exception("pod %s/%s: step failed; retrying", runtime.namespace, runtime.name)

    def stop(self, *_: object) -> None:
        self.stopping.set()

    def shutdown(self) -> None:
        """Stop every container (SIGTERM, then SIGKILL after a short grace); statuses are left as they are."""
        self.informer.stop()
        running = [(r, p) for r in self.pods.values() for p in r.processes.values()]
        for _, process in running:
            signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + min([SHUTDOWN_GRACE_SECONDS, *(r.grace_seconds() for r, _ in running)])
        while time.monotonic() < deadline and any(p.poll() is None for _, p in running):
            time.sleep(0.1)
        for _, process in running:
            signal_group(process.pid, signal.SIGKILL)
            process.wait()
        log.info("node agent stopped (%d containers stopped)", len(running))

    # --- kubelet endpoint (kubectl logs) ----------------------------------------------------------
    def start_kubelet_endpoints(self) -> KubeletEndpoints | None:
        """Serve `kubectl logs`; pods run without it if it cannot start (it is a convenience)."""
        addresses = [self.config.node_address(n) for n in sorted(self.node_names)]
        try:
            cert, key = serving_certificate(
                self.config.state_dir, (*addresses, *sorted(self.node_names)), self.config.state_dir / "pki"
            )
            endpoints = KubeletEndpoints(self, cert, key)
        except Exception:
            log.exception("the kubelet log endpoint could not start; kubectl logs will not work")
            return None
        for address in addresses:
            endpoints.serve(address, KUBELET_PORT)
        return endpoints

    def _runtime_named(self, namespace: str, pod: str) -> PodRuntime | None:
        # Called from the endpoint's threads: list() copies the values atomically under the GIL.
        return next((r for r in list(self.pods.values()) if (r.namespace, r.name) == (namespace, pod)), None)

    def log_file(self, namespace: str, pod: str, container: str, previous: bool) -> Path | None:
        runtime = self._runtime_named(namespace, pod)
        if runtime is not None:
            root = runtime.paths.root
        else:  # a pod the agent no longer tracks: its newest directory of that name
            candidates = sorted(
                self.config.pods_dir.glob(f"{namespace}_{pod}_*"), key=lambda p: p.stat().st_mtime
            )
            if not candidates:
                return None
            root = candidates[-1]
        paths = PodPaths(root)
        return paths.previous_log(container) if previous else paths.log(container)

    def is_running(self, namespace: str, pod: str, container: str) -> bool:
        runtime = self._runtime_named(namespace, pod)
        return runtime is not None and container in runtime.processes

    # --- nodes -----------------------------------------------------------------------------------
    def register_nodes(self) -> None:
        """Create the Node objects, waiting for the API server if it is not serving yet."""
        for name in sorted(self.node_names):
            while not self.stopping.is_set():
                try:
                    self.kube.create_node(nodes.build_node(self.config, name))
                    break
                except Exception as error:  # connection refused while the API server starts
                    log.warning("registering node %s failed (%s); retrying", name, error)
                    self.stopping.wait(1.0)
            log.info("node %s registered", name)
        for name in sorted(self.node_names):
            try:  # which code runs this node (a re-registered Node keeps its old metadata otherwise)
                self.kube.annotate_node(name, {CODE_ANNOTATION: code_fingerprint()})
            except Exception as error:
                log.warning("could not annotate node %s: %s", name, error)
        self.remove_stale_nodes()
        self.heartbeat()

    def remove_stale_nodes(self) -> None:
        """Nodes an earlier agent with more --nodes registered: without a node lifecycle controller they
        would stay Ready for ever and the scheduler would bind pods nobody runs."""
        try:
            mine = self.kube.node_names(f"{nodes.AGENT_LABEL}={self.config.node_prefix}")
            for name in sorted(set(mine) - self.node_names):
                self.kube.delete_node(name)
                log.warning("deleted node %s: this agent runs only %s", name, sorted(self.node_names))
        except Exception as error:  # an optional cleanup: never fatal
            log.warning("could not check for stale nodes: %s", error)

    def heartbeat(self) -> None:
        """Node status (Ready, capacity, heartbeat time), not-ready taints removed, Lease renewed."""
        now = utcnow()
        for name in sorted(self.node_names):
            try:
                node = self.kube.patch_node_status(name, nodes.build_node_status(self.config, name, now))
                kept = nodes.without_not_ready_taints(node.get("spec", {}).get("taints"))
                if kept is not None:
                    self.kube.set_node_taints(name, kept)
                self.kube.renew_lease(nodes.build_lease(name, node["metadata"]["uid"], now))
            except Exception as error:  # a missed heartbeat is retried on the next one
                log.warning("heartbeat of node %s failed: %s", name, error)

    # --- pod events ------------------------------------------------------------------------------
    def handle_event(self, event: PodEvent) -> None:
        if event.kind == "RESYNC":
            listed = {p["metadata"]["uid"]: p for p in event.pods or []}
            for uid in set(self.pods) - set(listed):
                self.forget(self.pods[uid])
            self.cluster_pods = listed
            self.hosts_dirty = True
            for pod in listed.values():
                self.upsert(pod)
            return
        assert event.pod is not None
        uid = event.pod["metadata"]["uid"]
        if event.kind == "DELETED":
            self.cluster_pods.pop(uid, None)
            if uid in self.pods:
                self.forget(self.pods[uid])
            self.hosts_dirty = True
            return
        before = self.cluster_pods.get(uid, {}).get("status", {}).get("podIP")
        self.cluster_pods[uid] = event.pod
        if event.pod.get("status", {}).get("podIP") != before:
            self.hosts_dirty = True
        self.upsert(event.pod)

    def upsert(self, pod: dict[str, Any]) -> None:
        if pod.get("spec", {}).get("nodeName") not in self.node_names:
            return
        uid = pod["metadata"]["uid"]
        runtime = self.pods.get(uid)
        if runtime is not None:
            runtime.pod = pod
            return
        if is_terminal(pod):
            if pod["metadata"].get("deletionTimestamp"):
                self.kube.confirm_pod_deletion(pod["metadata"]["namespace"], pod["metadata"]["name"], uid)
            return
        self.pods[uid] = self.new_runtime(pod)

    def new_runtime(self, pod: dict[str, Any]) -> PodRuntime:
        metadata, spec, previous = pod["metadata"], pod["spec"], pod.get("status") or {}
        runtime = PodRuntime(
            pod=pod,
            paths=PodPaths.for_pod(
                self.config.pods_dir, metadata["namespace"], metadata["name"], metadata["uid"]
            ),
            host_ip=self.config.node_address(spec["nodeName"]),
            start_time=parse_time(previous.get("startTime")) or utcnow(),
            init=records_after_restart(
                spec.get("initContainers") or [], previous.get("initContainerStatuses") or []
            ),
            main=records_after_restart(spec["containers"], previous.get("containerStatuses") or []),
        )
        if previous.get("podIP"):
            runtime.ip = previous["podIP"]
            self.ipam.reserve(previous["podIP"])
        if runtime.init:
            for record in runtime.main:
                if record.state == "waiting":
                    record.reason = status.POD_INITIALIZING
        self._apply_restart_policy_to_lost(runtime)
        log.info("pod %s/%s bound to %s", metadata["namespace"], metadata["name"], spec["nodeName"])
        return runtime

    def _apply_restart_policy_to_lost(self, runtime: PodRuntime) -> None:
        for record in [*runtime.init, *runtime.main]:
            if record.state == "terminated" and record.terminated is not None:
                self._after_exit(runtime, record, is_init=record in runtime.init)

    def forget(self, runtime: PodRuntime) -> None:
        """The pod is gone from the API: kill what is left, free its IP, drop its volumes (logs stay)."""
        for process in runtime.processes.values():
            signal_group(process.pid, signal.SIGKILL)
            process.wait()
        if runtime.ip:
            self.ipam.release(runtime.ip)
        shutil.rmtree(runtime.paths.volumes, ignore_errors=True)
        for group in runtime.cgroups.values():
            MemoryCgroups.remove(group)
        self.pods.pop(runtime.uid, None)
        self.hosts_dirty = True

    # --- one pod ---------------------------------------------------------------------------------
    def step(self, runtime: PodRuntime) -> None:
        if runtime.deletion_confirmed or (
            runtime.terminal and not runtime.pod["metadata"].get("deletionTimestamp")
        ):
            return
        now = time.monotonic()
        deleting = bool(runtime.pod["metadata"].get("deletionTimestamp"))
        if deleting and not runtime.stopping:
            self.begin_stop(runtime, runtime.grace_seconds())
        deadline = runtime.spec.get("activeDeadlineSeconds")
        if (
            deadline is not None
            and not runtime.stopping
            and not runtime.terminal
            and (utcnow() - runtime.start_time).total_seconds() > float(deadline)
        ):
            runtime.failure_reason = status.DEADLINE_EXCEEDED
            self.event(
                runtime,
                status.DEADLINE_EXCEEDED,
                f"Pod was active on the node longer than {deadline}s",
                warning=True,
            )
            runtime.failure_message = (
                f"Pod was active on the node longer than the specified deadline ({deadline}s)"
            )
            self.begin_stop(runtime, runtime.grace_seconds())
        self.reap(runtime)
        if runtime.stopping:
            if runtime.processes and now >= runtime.kill_at:
                for process in runtime.processes.values():
                    signal_group(process.pid, signal.SIGKILL)
            if not runtime.processes and deleting:
                self.publish_status(runtime)
                self.kube.confirm_pod_deletion(runtime.namespace, runtime.name, runtime.uid)
                runtime.deletion_confirmed = True
                return
        elif not runtime.terminal:
            self.start_due(runtime, now)
        self.publish_status(runtime)

    def begin_stop(self, runtime: PodRuntime, grace: float) -> None:
        runtime.stopping = True
        runtime.kill_at = time.monotonic() + grace
        for name, process in runtime.processes.items():
            runtime.killed_by_agent.add(name)
            signal_group(process.pid, signal.SIGTERM)
            self.event(runtime, "Killing", f"Stopping container {name}", container=name)

    def reap(self, runtime: PodRuntime) -> None:
        for name, process in list(runtime.processes.items()):
            code = process.poll()
            if code is None:
                continue
            del runtime.processes[name]
            (runtime.paths.container_dir(name) / PID_FILE).unlink(missing_ok=True)
            signal_group(process.pid, signal.SIGKILL)  # leftovers of the container, as a runtime would
            container = runtime.container_spec(name)
            record = next(r for r in [*runtime.init, *runtime.main] if r.name == name)
            signum = -code if code < 0 else None
            exit_code = 128 + signum if signum else code
            oom_killed = self._oom_killed(runtime, name, signum)
            start_error = runtime.paths.start_error(name)
            if start_error.exists() and start_error.stat().st_size:
                reason = status.START_ERROR
            elif exit_code == 0:
                reason = status.COMPLETED
            elif oom_killed:
                reason = status.OOM_KILLED
            else:
                reason = status.ERROR
            runtime.killed_by_agent.discard(name)
            record.state = "terminated"
            record.terminated = Terminated(
                exit_code=exit_code,
                reason=reason,
                started_at=record.started_at,
                finished_at=utcnow(),
                message=termination_message(runtime.paths, container, exit_code),
                signal=signum,
            )
            log.info("pod %s/%s container %s exited %d", runtime.namespace, runtime.name, name, exit_code)
            if not runtime.stopping and not runtime.failure_reason:
                self._after_exit(runtime, record, is_init=record in runtime.init)

    def _oom_killed(self, runtime: PodRuntime, name: str, signum: int | None) -> bool:
        group = runtime.cgroups.pop(name, None)
        if group is not None:
            killed = MemoryCgroups.oom_killed(group)
            MemoryCgroups.remove(group)
            return killed
        # Without a cgroup: a SIGKILL the agent did not send is most likely the kernel's OOM killer.
        return signum == signal.SIGKILL and name not in runtime.killed_by_agent

    def _after_exit(self, runtime: PodRuntime, record: ContainerRecord, is_init: bool) -> None:
        """restartPolicy: schedule a restart with the kubelet's doubling back-off, or leave it terminated."""
        assert record.terminated is not None
        policy = runtime.spec.get("restartPolicy", "Always")
        failed = record.terminated.exit_code != 0
        restart = (policy == "OnFailure" and failed) or (policy == "Always" and (failed or not is_init))
        if not restart:
            return
        delay = runtime.backoff.get(record.name, self.config.restart_backoff_seconds)
        runtime.backoff[record.name] = min(delay * 2, MAX_BACKOFF_SECONDS)
        runtime.next_start[record.name] = time.monotonic() + delay
        record.last_terminated = record.terminated
        record.terminated = None
        record.state = "waiting"
        record.reason = status.CRASH_LOOP
        record.message = f"back-off {delay:g}s restarting failed container={record.name} pod={runtime.name}"
        self.event(
            runtime, "BackOff", "Back-off restarting failed container", warning=True, container=record.name
        )

    def ensure_sandbox(self, runtime: PodRuntime) -> None:
        """IP, directory, hosts file, HOME and volumes; ContainerConfigError while something is missing."""
        if runtime.ip is None:
            runtime.ip = self.ipam.allocate()
            self.hosts_dirty = True
        paths = runtime.paths
        paths.root.mkdir(parents=True, exist_ok=True)
        # Private to root: volumes hold Secrets. Containers reach their files through bind mounts,
        # where only each mounted file's or directory's own mode counts, not its parents'.
        paths.root.chmod(0o700)
        if not paths.hosts.exists():
            write_in_place(paths.hosts, self._hosts_file(runtime))
        if not paths.home.exists():
            paths.home.mkdir()
            paths.home.chmod(0o777)
        if runtime.volume_dirs is None:
            pod = self._pod_with_addresses(runtime)
            allocatable = nodes.node_resources(self.config)
            fs_group = (runtime.spec.get("securityContext") or {}).get("fsGroup")
            dirs: dict[str, str] = {}
            for volume in runtime.spec.get("volumes") or []:
                plan = plan_volume(pod, volume, self.kube, allocatable)
                dirs[volume["name"]] = write_volume(plan, paths.volumes / volume["name"], fs_group)
            runtime.volume_dirs = dirs

    def start_due(self, runtime: PodRuntime, now: float) -> None:
        pending = [r for r in [*runtime.init, *runtime.main] if r.state == "waiting"]
        if not pending or all(now < runtime.next_start.get(r.name, 0.0) for r in pending):
            return
        try:
            self.ensure_sandbox(runtime)
        except ContainerConfigError as error:
            if pending[0].message != str(error):  # one Event per distinct problem, not per retry
                self.event(runtime, "FailedMount", str(error), warning=True)
            # A volume that cannot be set up keeps the pod in ContainerCreating, as on a kubelet.
            for record in pending:
                record.reason, record.message = status.CONTAINER_CREATING, str(error)
                runtime.next_start[record.name] = now + CONFIG_RETRY_SECONDS
            return
        unfinished_init = [r for r in runtime.init if not r.succeeded]
        if unfinished_init:
            first = unfinished_init[0]
            if (
                first.state == "waiting"
                and not runtime.processes
                and now >= runtime.next_start.get(first.name, 0.0)
            ):
                self.start_container(runtime, first, now)
            return
        for record in runtime.main:
            if record.state == "waiting" and now >= runtime.next_start.get(record.name, 0.0):
                self.start_container(runtime, record, now)

    def start_container(self, runtime: PodRuntime, record: ContainerRecord, now: float) -> None:
        container = runtime.container_spec(record.name)
        paths = runtime.paths
        hostname = hosts.pod_hostname(runtime.pod)
        try:
            env = resolve_env(
                self._pod_with_addresses(runtime),
                container,
                self.kube,
                self._service_env(),
                nodes.node_resources(self.config),
            )
            argv = container_argv(container, env)
            mounts = container_mounts(container, runtime.volume_dirs or {})
        except ContainerConfigError as error:
            if record.message != str(error):  # one Event per distinct problem, not per retry
                self.event(runtime, "Failed", f"Error: {error}", warning=True, container=record.name)
            record.state, record.reason, record.message = "waiting", status.CONFIG_ERROR, str(error)
            runtime.next_start[record.name] = now + CONFIG_RETRY_SECONDS
            return
        user = user_of(runtime.pod, container)
        uid, gid, _ = user
        container_dir = paths.container_dir(record.name)
        container_dir.mkdir(parents=True, exist_ok=True)
        paths.start_error(record.name).unlink(missing_ok=True)
        for own_file in (paths.termination_log(record.name), paths.start_error(record.name)):
            own_file.write_bytes(b"")
            if uid is not None:
                os.chown(own_file, uid, gid if gid is not None else -1)
        mounts += [
            BindMount(str(paths.hosts), "/etc/hosts", read_only=False),
            BindMount(str(paths.home), POD_HOME, read_only=False),
            BindMount(
                str(paths.termination_log(record.name)),
                container.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH,
                read_only=False,
            ),
        ]
        if not any(m.target.rstrip("/") == "/tmp" for m in mounts):
            mounts.append(BindMount(str(self._fresh_tmp(paths, record.name)), "/tmp", read_only=False))
        # The project's environment is the image: where a volume (the container's own /tmp, an emptyDir
        # at /tmp) covers it, e.g. a CI checkout under /tmp, it is mounted back on top.
        mounts += [
            BindMount(str(path), str(path), read_only=False)
            for path in self.config.image_paths
            if any(path.is_relative_to(m.target) for m in mounts)
        ]
        image_env = {
            "PATH": f"{self.config.python_bin_dir}:{SYSTEM_PATH}",
            "HOME": POD_HOME,
            "HOSTNAME": hostname,
        }
        spec = build_launch_spec(
            argv=argv,
            env={**image_env, **env},
            mounts=mounts,
            hostname=hostname,
            working_dir=container.get("workingDir") or "/",
            user=user,
            start_error_path=paths.start_error(record.name),
            cgroup=self._memory_cgroup(runtime, container),
        )
        if record.last_terminated is not None and paths.log(record.name).exists():
            paths.log(record.name).replace(paths.previous_log(record.name))  # for `kubectl logs --previous`
        process = start_process(spec, paths.launch_spec(record.name), paths.log(record.name))
        runtime.processes[record.name] = process
        record_process(container_dir, process.pid)
        if record.last_terminated is not None:
            record.restart_count += 1
        record.state, record.reason, record.message = "running", "", ""
        record.started_at = utcnow()
        self.event(runtime, "Started", f"Started container {record.name}", container=record.name)
        log.info(
            "pod %s/%s container %s started (pid %d)",
            runtime.namespace,
            runtime.name,
            record.name,
            process.pid,
        )

    @staticmethod
    def _fresh_tmp(paths: PodPaths, container: str) -> Path:
        """The container's own empty /tmp, as a container's writable layer gives it (the host's /tmp
        is shared by everything on this machine, under other users and other pods)."""
        tmp = paths.container_dir(container) / "tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        tmp.chmod(0o1777)
        return tmp

    def _memory_cgroup(self, runtime: PodRuntime, container: dict[str, Any]) -> Path | None:
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        if limit is None:
            return None
        group = self.memory.create(f"{runtime.uid}_{container['name']}", int(parse_quantity(str(limit))))
        if group is not None:
            runtime.cgroups[container["name"]] = group
        return group

    def event(
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

    # --- status and DNS --------------------------------------------------------------------------
    def publish_status(self, runtime: PodRuntime) -> None:
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
            self.kube.patch_pod_status(runtime.namespace, runtime.name, new_status)
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
                self.ipam.release(runtime.ip)
                self.hosts_dirty = True

    def _pod_with_addresses(self, runtime: PodRuntime) -> dict[str, Any]:
        """The pod as the downward API sees it at container start: podIP and hostIP already set."""
        current = dict(runtime.pod.get("status") or {})
        current.update(hostIP=runtime.host_ip, hostIPs=[{"ip": runtime.host_ip}])
        if runtime.ip:
            current.update(podIP=runtime.ip, podIPs=[{"ip": runtime.ip}])
        return {**runtime.pod, "status": current}

    def _service_env(self) -> dict[str, str]:
        host, port = self.kube.server_host, self.kube.server_port
        return {
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": str(port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
        }

    def _addresses(self) -> list[hosts.PodAddress]:
        known: dict[str, hosts.PodAddress] = {}
        for uid, pod in self.cluster_pods.items():
            if pod.get("spec", {}).get("subdomain") and not is_terminal(pod):
                record = hosts.pod_address(pod)
                if record is not None:
                    known[uid] = record
        for uid, runtime in self.pods.items():
            if runtime.terminal:
                known.pop(uid, None)
            elif runtime.ip and runtime.spec.get("subdomain"):
                known[uid] = hosts.PodAddress(
                    runtime.namespace, hosts.pod_hostname(runtime.pod), runtime.spec["subdomain"], runtime.ip
                )
        return list(known.values())

    def _hosts_file(self, runtime: PodRuntime, peers: list[hosts.PodAddress] | None = None) -> str:
        assert runtime.ip is not None
        own = hosts.PodAddress(
            runtime.namespace,
            hosts.pod_hostname(runtime.pod),
            runtime.spec.get("subdomain") or "",
            runtime.ip,
        )
        return hosts.render_hosts_file(own, self._addresses() if peers is None else peers)

    def refresh_hosts_files(self) -> None:
        """Rewrite hosts files in place as peers come and go, so a pod can resolve a peer started after it."""
        self.hosts_dirty = False
        peers = self._addresses()
        for runtime in self.pods.values():
            if runtime.ip and not runtime.terminal and runtime.paths.hosts.exists():
                write_in_place(runtime.paths.hosts, self._hosts_file(runtime, peers))
