"""Starting a pod's containers: init containers one at a time and in order, then every main container,
each when its restart back-off has passed; a missing volume, Secret or key keeps them waiting."""

from __future__ import annotations

import logging
import os

from kubetune_devtools.devstack.node_agent import hosts, images, nodes, sandbox, status
from kubetune_devtools.devstack.node_agent.env import ContainerConfigError, container_argv, resolve_env
from kubetune_devtools.devstack.node_agent.images import ImageConfig
from kubetune_devtools.devstack.node_agent.orphans import record_process
from kubetune_devtools.devstack.node_agent.pod_runtime import PodRuntime, utcnow
from kubetune_devtools.devstack.node_agent.process import (
    SYSTEM_PATH,
    build_launch_spec,
    start_process,
    user_of,
)
from kubetune_devtools.devstack.node_agent.state import AgentState
from kubetune_devtools.devstack.node_agent.status import ContainerRecord
from kubetune_devtools.devstack.node_agent.volumes import container_mounts

log = logging.getLogger(__name__)

CONFIG_RETRY_SECONDS = 5.0


def start_due(state: AgentState, runtime: PodRuntime, now: float) -> None:
    pending = [r for r in [*runtime.init, *runtime.main] if r.state == "waiting"]
    if not pending or all(now < runtime.next_start.get(r.name, 0.0) for r in pending):
        return
    try:
        sandbox.ensure_sandbox(state, runtime)
    except ContainerConfigError as error:
        if pending[0].message != str(error):  # one Event per distinct problem, not per retry
            state.post_event(runtime, "FailedMount", str(error), warning=True)
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
            start_container(state, runtime, first, now)
        return
    for record in runtime.main:
        if record.state == "waiting" and now >= runtime.next_start.get(record.name, 0.0):
            start_container(state, runtime, record, now)


def start_container(state: AgentState, runtime: PodRuntime, record: ContainerRecord, now: float) -> None:
    container = runtime.container_spec(record.name)
    paths = runtime.paths
    hostname = hosts.pod_hostname(runtime.pod)
    image: ImageConfig | None = None
    if not images.runs_checkout(record.image):
        try:
            image = state.images.resolve(record.image)
        except images.ImageNotPresentError as error:
            image_pull_failed(state, runtime, record, str(error), now)
            return
        runtime.backoff.pop(pull_backoff_key(record.name), None)
        record.image_id = image.image_id
    try:
        env = resolve_env(
            sandbox.pod_with_addresses(runtime),
            container,
            state.kube,
            service_env(state),
            nodes.node_resources(state.config),
        )
        argv = container_argv(container, env, image)
        volume_mounts = container_mounts(container, runtime.volume_dirs or {})
        user = user_of(runtime.pod, container, images.image_user(image) if image else None)
    except (ContainerConfigError, ValueError) as error:
        if record.message != str(error):  # one Event per distinct problem, not per retry
            state.post_event(runtime, "Failed", f"Error: {error}", warning=True, container=record.name)
        record.state, record.reason, record.message = "waiting", status.CONFIG_ERROR, str(error)
        runtime.next_start[record.name] = now + CONFIG_RETRY_SECONDS
        return
    uid, gid, _ = user
    container_dir = paths.container_dir(record.name)
    container_dir.mkdir(parents=True, exist_ok=True)
    paths.start_error(record.name).unlink(missing_ok=True)
    for own_file in (paths.termination_log(record.name), paths.start_error(record.name)):
        own_file.write_bytes(b"")
        if uid is not None:
            os.chown(own_file, uid, gid if gid is not None else -1)
    mounts = sandbox.sandbox_mounts(state, runtime, container, volume_mounts, checkout=image is None)
    if image is None:
        base_env = {
            "PATH": f"{state.config.python_bin_dir}:{SYSTEM_PATH}",
            "HOME": sandbox.POD_HOME,
            "HOSTNAME": hostname,
        }
        # Without workingDir, the images' WORKDIR (Dockerfile): the pod's own HOME, not the host's /.
        working_dir = container.get("workingDir") or sandbox.IMAGE_WORKDIR
    else:
        base_env = {"PATH": SYSTEM_PATH, "HOME": images.home_of(image, uid or 0)}
        base_env.update(images.image_env(image))
        base_env["HOSTNAME"] = hostname
        working_dir = container.get("workingDir") or image.working_dir or "/"
    spec = build_launch_spec(
        argv=argv,
        env={**base_env, **env},
        mounts=mounts,
        hostname=hostname,
        working_dir=working_dir,
        user=user,
        start_error_path=paths.start_error(record.name),
        cgroup=sandbox.memory_cgroup(state, runtime, container),
        rootfs=sandbox.container_root(paths, container, image) if image else None,
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
    state.post_event(runtime, "Started", f"Started container {record.name}", container=record.name)
    log.info(
        "pod %s/%s container %s started (pid %d)", runtime.namespace, runtime.name, record.name, process.pid
    )


def pull_backoff_key(container: str) -> str:
    """The image-pull back-off is the kubelet's own, apart from the restart back-off."""
    return f"pull:{container}"


def image_pull_failed(
    state: AgentState, runtime: PodRuntime, record: ContainerRecord, message: str, now: float
) -> None:
    """ErrImagePull on the first failure, then ImagePullBackOff while it is retried with the kubelet's
    doubling back-off (an image built or loaded meanwhile is found at the next try)."""
    runtime.schedule_retry(
        record.name, pull_backoff_key(record.name), state.config.restart_backoff_seconds, now
    )
    first = record.reason not in (status.ERR_IMAGE_PULL, status.IMAGE_PULL_BACK_OFF)
    if first:
        state.post_event(
            runtime, "Failed", f"Failed to pull image: {message}", warning=True, container=record.name
        )
        state.post_event(runtime, "Failed", "Error: ErrImagePull", warning=True, container=record.name)
        record.reason = status.ERR_IMAGE_PULL
    else:
        if record.reason != status.IMAGE_PULL_BACK_OFF:
            state.post_event(
                runtime,
                "BackOff",
                f'Back-off pulling image "{record.image}"',
                warning=True,
                container=record.name,
            )
        record.reason = status.IMAGE_PULL_BACK_OFF
    record.state, record.message = "waiting", message


def service_env(state: AgentState) -> dict[str, str]:
    """The `kubernetes` Service's variables, as every container gets them: the API server's address."""
    host, port = state.kube.server_host, state.kube.server_port
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": str(port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
        "KUBERNETES_PORT": f"tcp://{host}:{port}",
    }
