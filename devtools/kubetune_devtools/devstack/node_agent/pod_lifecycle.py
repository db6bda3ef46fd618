"""One pod's turn of the loop: deletion and activeDeadlineSeconds stop it (SIGTERM, SIGKILL after the
grace period), exited containers are reaped and restarted per restartPolicy with the kubelet's
doubling back-off, due containers start, and the status is published."""

from __future__ import annotations

import logging
import signal
import time

from kubetune_devtools.devstack.node_agent import status
from kubetune_devtools.devstack.node_agent.container_start import start_due
from kubetune_devtools.devstack.node_agent.memory_limits import MemoryCgroups
from kubetune_devtools.devstack.node_agent.orphans import PID_FILE
from kubetune_devtools.devstack.node_agent.pod_runtime import PodRuntime, utcnow
from kubetune_devtools.devstack.node_agent.process import signal_group, termination_message
from kubetune_devtools.devstack.node_agent.state import AgentState
from kubetune_devtools.devstack.node_agent.status import ContainerRecord, Terminated
from kubetune_devtools.devstack.node_agent.status_publisher import publish_status

log = logging.getLogger(__name__)


def step(state: AgentState, runtime: PodRuntime) -> None:
    if runtime.deletion_confirmed or (
        runtime.terminal and not runtime.pod["metadata"].get("deletionTimestamp")
    ):
        return
    now = time.monotonic()
    deleting = bool(runtime.pod["metadata"].get("deletionTimestamp"))
    if deleting and not runtime.stopping:
        begin_stop(state, runtime, runtime.grace_seconds())
    deadline = runtime.spec.get("activeDeadlineSeconds")
    if (
        deadline is not None
        and not runtime.stopping
        and not runtime.terminal
        and (utcnow() - runtime.start_time).total_seconds() > float(deadline)
    ):
        runtime.failure_reason = status.DEADLINE_EXCEEDED
        state.post_event(
            runtime,
            status.DEADLINE_EXCEEDED,
            f"Pod was active on the node longer than {deadline}s",
            warning=True,
        )
        runtime.failure_message = (
            f"Pod was active on the node longer than the specified deadline ({deadline}s)"
        )
        begin_stop(state, runtime, runtime.grace_seconds())
    reap(state, runtime)
    if runtime.stopping:
        if runtime.processes and now >= runtime.kill_at:
            for process in runtime.processes.values():
                signal_group(process.pid, signal.SIGKILL)
        if not runtime.processes and deleting:
            publish_status(state, runtime)
            state.kube.confirm_pod_deletion(runtime.namespace, runtime.name, runtime.uid)
            runtime.deletion_confirmed = True
            return
    elif not runtime.terminal:
        start_due(state, runtime, now)
    publish_status(state, runtime)


def begin_stop(state: AgentState, runtime: PodRuntime, grace: float) -> None:
    runtime.stopping = True
    runtime.kill_at = time.monotonic() + grace
    for name, process in runtime.processes.items():
        runtime.killed_by_agent.add(name)
        signal_group(process.pid, signal.SIGTERM)
        state.post_event(runtime, "Killing", f"Stopping container {name}", container=name)


def reap(state: AgentState, runtime: PodRuntime) -> None:
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
        oom_killed = _oom_killed(runtime, name, signum)
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
            after_exit(state, runtime, record, is_init=record in runtime.init)


def _oom_killed(runtime: PodRuntime, name: str, signum: int | None) -> bool:
    group = runtime.cgroups.pop(name, None)
    if group is not None:
        killed = MemoryCgroups.oom_killed(group)
        MemoryCgroups.remove(group)
        return killed
    # Without a cgroup: a SIGKILL the agent did not send to a container with a memory limit (which the
    # agent could not enforce here) is most likely the kernel's OOM killer; any other SIGKILL (a user's
    # `kill -9`, a test's) is an Error with exit code 137, as a kubelet reports it.
    limits = (runtime.container_spec(name).get("resources") or {}).get("limits") or {}
    return signum == signal.SIGKILL and name not in runtime.killed_by_agent and "memory" in limits


def after_exit(state: AgentState, runtime: PodRuntime, record: ContainerRecord, is_init: bool) -> None:
    """restartPolicy: schedule a restart with the kubelet's doubling back-off, or leave it terminated."""
    assert record.terminated is not None
    policy = runtime.spec.get("restartPolicy", "Always")
    failed = record.terminated.exit_code != 0
    restart = (policy == "OnFailure" and failed) or (policy == "Always" and (failed or not is_init))
    if not restart:
        return
    delay = runtime.schedule_retry(
        record.name, record.name, state.config.restart_backoff_seconds, time.monotonic()
    )
    record.last_terminated = record.terminated
    record.terminated = None
    record.state = "waiting"
    record.reason = status.CRASH_LOOP
    record.message = f"back-off {delay:g}s restarting failed container={record.name} pod={runtime.name}"
    state.post_event(
        runtime, "BackOff", "Back-off restarting failed container", warning=True, container=record.name
    )
