"""Each pod's sandbox: its IP, a root-only directory with hosts file, HOME and volumes, and what each
container sees of it (bind mounts, a fresh /tmp, its memory cgroup)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kubetune_devtools.devstack.node_agent import dns, nodes
from kubetune_devtools.devstack.node_agent.env import parse_quantity
from kubetune_devtools.devstack.node_agent.images import ImageConfig
from kubetune_devtools.devstack.node_agent.pod_files import write_in_place, write_volume
from kubetune_devtools.devstack.node_agent.pod_runtime import PodRuntime
from kubetune_devtools.devstack.node_agent.process import DEFAULT_TERMINATION_MESSAGE_PATH, PodPaths
from kubetune_devtools.devstack.node_agent.state import AgentState
from kubetune_devtools.devstack.node_agent.volumes import BindMount, plan_volume

POD_HOME = "/home/kubetune"  # each pod's own writable HOME, bind-mounted from its directory
IMAGE_WORKDIR = POD_HOME  # the project's images' WORKDIR: a container's cwd without workingDir


def ensure_sandbox(state: AgentState, runtime: PodRuntime) -> None:
    """IP, directory, hosts file, HOME and volumes; ContainerConfigError while something is missing."""
    if runtime.ip is None:
        runtime.ip = state.ipam.allocate()
        state.hosts_dirty = True
    paths = runtime.paths
    paths.root.mkdir(parents=True, exist_ok=True)
    # Private to root: volumes hold Secrets. Containers reach their files through bind mounts,
    # where only each mounted file's or directory's own mode counts, not its parents'.
    paths.root.chmod(0o700)
    if not paths.hosts.exists():
        write_in_place(paths.hosts, dns.hosts_file(state, runtime))
    if not paths.home.exists():
        paths.home.mkdir()
        paths.home.chmod(0o777)
    if runtime.volume_dirs is None:
        pod = pod_with_addresses(runtime)
        allocatable = nodes.node_resources(state.config)
        fs_group = (runtime.spec.get("securityContext") or {}).get("fsGroup")
        dirs: dict[str, str] = {}
        for volume in runtime.spec.get("volumes") or []:
            plan = plan_volume(pod, volume, state.kube, allocatable)
            dirs[volume["name"]] = write_volume(plan, paths.volumes / volume["name"], fs_group)
        runtime.volume_dirs = dirs


def pod_with_addresses(runtime: PodRuntime) -> dict[str, Any]:
    """The pod as the downward API sees it at container start: podIP and hostIP already set."""
    current = dict(runtime.pod.get("status") or {})
    current.update(hostIP=runtime.host_ip, hostIPs=[{"ip": runtime.host_ip}])
    if runtime.ip:
        current.update(podIP=runtime.ip, podIPs=[{"ip": runtime.ip}])
    return {**runtime.pod, "status": current}


def sandbox_mounts(
    state: AgentState,
    runtime: PodRuntime,
    container: dict[str, Any],
    volume_mounts: list[BindMount],
    *,
    checkout: bool,
) -> list[BindMount]:
    """The container's volume mounts plus the pod's hosts file, its termination-message file and a fresh
    /tmp unless a volume is mounted there; in the checkout's environment (images.py) also the pod's own
    HOME and the project's environment where a mount covers it."""
    paths, name = runtime.paths, container["name"]
    mounts = [
        *volume_mounts,
        BindMount(str(paths.hosts), "/etc/hosts", read_only=False),
        BindMount(
            str(paths.termination_log(name)),
            container.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH,
            read_only=False,
        ),
    ]
    if checkout:
        mounts.append(BindMount(str(paths.home), POD_HOME, read_only=False))
    if not any(m.target.rstrip("/") == "/tmp" for m in mounts):
        mounts.append(BindMount(str(fresh_tmp(paths, name)), "/tmp", read_only=False))
    if checkout:
        # The project's environment is the "image": where a volume (the container's own /tmp, an
        # emptyDir at /tmp) covers it, e.g. a CI checkout under /tmp, it is mounted back on top.
        mounts += [
            BindMount(str(path), str(path), read_only=False)
            for path in state.config.image_paths
            if any(path.is_relative_to(m.target) for m in mounts)
        ]
    return mounts


def container_root(paths: PodPaths, container: dict[str, Any], image: ImageConfig) -> dict[str, Any]:
    """The container's root file system for the launcher: the image's layers under a fresh writable
    layer of its own (a restarted container starts from the image again, as on a kubelet)."""
    layer = paths.container_dir(container["name"]) / "layer"
    shutil.rmtree(layer, ignore_errors=True)
    read_only = bool((container.get("securityContext") or {}).get("readOnlyRootFilesystem"))
    return {
        "lower": str(image.rootfs),
        "upper": str(layer / "upper"),
        "work": str(layer / "work"),
        "merged": str(layer / "root"),
        "read_only": read_only,
    }


def fresh_tmp(paths: PodPaths, container: str) -> Path:
    """The container's own empty /tmp, as a container's writable layer gives it (the host's /tmp
    is shared by everything on this machine, under other users and other pods)."""
    tmp = paths.container_dir(container) / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tmp.chmod(0o1777)
    return tmp


def memory_cgroup(state: AgentState, runtime: PodRuntime, container: dict[str, Any]) -> Path | None:
    """The container's own memory cgroup when it has a memory limit (None where limits cannot be set)."""
    limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if limit is None:
        return None
    group = state.memory.create(f"{runtime.uid}_{container['name']}", int(parse_quantity(str(limit))))
    if group is not None:
        runtime.cgroups[container["name"]] = group
    return group
