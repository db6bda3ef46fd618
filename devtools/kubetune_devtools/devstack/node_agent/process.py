"""A pod's directory on this machine and its containers as local processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubetune_devtools.devstack.node_agent.env import ContainerConfigError
from kubetune_devtools.devstack.node_agent.volumes import BindMount

DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LOG_LINES = 80
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class PodPaths:
    """`<state-dir>/pods/<namespace>_<pod>_<uid>/`: logs, volumes, hosts file, termination logs."""

    root: Path

    @classmethod
    def for_pod(cls, pods_dir: Path, namespace: str, name: str, uid: str) -> PodPaths:
        return cls(pods_dir / f"{namespace}_{name}_{uid}")

    def log(self, container: str) -> Path:
        return self.root / f"{container}.log"

    def previous_log(self, container: str) -> Path:
        """The log of the container's run before its last restart."""
        return self.root / f"{container}.previous.log"

    def container_dir(self, container: str) -> Path:
        return self.root / "containers" / container

    def termination_log(self, container: str) -> Path:
        return self.container_dir(container) / "termination-log"

    def start_error(self, container: str) -> Path:
        return self.container_dir(container) / "start-error"

    def launch_spec(self, container: str) -> Path:
        return self.container_dir(container) / "launch.json"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def hosts(self) -> Path:
        return self.root / "hosts"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def remove_pod_files(self) -> None:
        """Delete what the pod wrote or was given (volumes, HOME, each container's /tmp and files) once
        the pod is gone, as a kubelet drops a pod's volumes and container layers. The logs stay."""
        for directory in (self.volumes, self.home, self.root / "containers"):
            shutil.rmtree(directory, ignore_errors=True)
        self.hosts.unlink(missing_ok=True)


# The USER of the project's images (Dockerfile): what a pod of the checkout's environment (images.py) runs
# as when it only says runAsNonRoot.
IMAGE_NON_ROOT_USER = 1000


def user_of(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    image_user: tuple[int, int | None] | None = None,
) -> tuple[int | None, int | None, list[int]]:
    """runAsUser, runAsGroup (container settings win over the pod's, both over the image's USER) and
    supplemental groups + fsGroup.

    The checkout's environment has no USER (`image_user` None): a container that must not run as root
    (`runAsNonRoot`) without a `runAsUser` runs as the project images' user, 1000:1000. A container that
    would run as root under runAsNonRoot is refused, as the kubelet refuses it.
    """
    pod_context = pod["spec"].get("securityContext") or {}
    own = container.get("securityContext") or {}
    uid = own.get("runAsUser", pod_context.get("runAsUser"))
    gid = own.get("runAsGroup", pod_context.get("runAsGroup"))
    non_root = own.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
    if uid is None and image_user is not None:
        uid, image_gid = image_user
        gid = image_gid if gid is None else gid
    elif uid is None and non_root:
        uid = IMAGE_NON_ROOT_USER
    if non_root and uid is not None and int(uid) == 0:
        raise ContainerConfigError("container has runAsNonRoot and image will run as root")
    groups = [int(g) for g in pod_context.get("supplementalGroups") or []]
    if pod_context.get("fsGroup") is not None:
        groups.append(int(pod_context["fsGroup"]))
    if uid is not None and gid is None:
        gid = uid if int(uid) != 0 else 0
    return uid, gid, groups


def build_launch_spec(
    *,
    argv: list[str],
    env: Mapping[str, str],
    mounts: list[BindMount],
    hostname: str,
    working_dir: str,
    user: tuple[int | None, int | None, list[int]],
    start_error_path: Path,
    cgroup: Path | None = None,
    rootfs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What launcher.py needs to become the container."""
    uid, gid, groups = user
    return {
        "argv": argv,
        "env": dict(env),
        "mounts": [{"source": m.source, "target": m.target, "read_only": m.read_only} for m in mounts],
        "hostname": hostname,
        "working_dir": working_dir or "/",
        "uid": uid,
        "gid": gid,
        "groups": groups,
        "start_error_path": str(start_error_path),
        "cgroup": str(cgroup) if cgroup else None,
        "rootfs": dict(rootfs) if rootfs else None,
    }


def start_process(spec: dict[str, Any], spec_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start the container in new mount/UTS namespaces and its own process group, logging to `log_path`."""
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:  # holds resolved Secrets: root-only, deleted by the launcher
        json.dump(spec, handle)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                sys.executable,
                "-m",
                "kubetune_devtools.devstack.node_agent.launcher",
                str(spec_path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={"PATH": SYSTEM_PATH},
        )


def signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal the container's whole process group (its children too), as a runtime stops a container."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def termination_message(paths: PodPaths, container: Mapping[str, Any], exit_code: int) -> str:
    """terminationMessagePath's content, or the log's tail under FallbackToLogsOnError for a failure."""
    name = container["name"]
    for source in (paths.start_error(name), paths.termination_log(name)):
        if source.exists():
            text = source.read_bytes()[:MAX_TERMINATION_MESSAGE].decode("utf-8", errors="replace")
            if text:
                return text
    if exit_code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
        log = paths.log(name)
        if log.exists():
            lines = log.read_bytes()[-MAX_TERMINATION_MESSAGE:].decode("utf-8", errors="replace").splitlines()
            return "\n".join(lines[-FALLBACK_LOG_LINES:])
    return ""
