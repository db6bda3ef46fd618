"""Runs inside the pod's fresh mount+UTS namespaces (made by `unshare`), then becomes the container.

The agent starts `unshare --mount --uts --propagation private python -m ...launcher SPEC`: as root in
the new namespaces this bind-mounts the pod's volumes, hosts file and termination-log file at the
paths the container asks for, sets the pod's hostname, drops to runAsUser/runAsGroup and execs the
command in the same process (so the agent's pid, signals and exit status are the container's).
The spec file holds resolved Secrets: it is read and deleted first.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import stat
import sys
from pathlib import Path
from typing import Any

MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
START_ERROR_EXIT_CODE = 128

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str | None, target: str, flags: int) -> None:
    result = _libc.mount(
        source.encode() if source else None, target.encode(), None, ctypes.c_ulong(flags), None
    )
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mount {source} -> {target}: {os.strerror(code)}")


def _ensure_target(source_is_dir: bool, target: Path) -> None:
    """A bind mount needs an existing target of the same kind; a missing one is created."""
    if target.exists():
        return
    if source_is_dir:
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()


def bind_mounts(mounts: list[dict[str, Any]]) -> None:
    # Shallow targets first, so a mount nested in another volume lands inside it, not under it.
    ordered = sorted(mounts, key=lambda m: len(Path(m["target"]).parts))
    # Every source is opened before anything is mounted: covering /tmp must not hide a source that
    # lives under /tmp (a state directory there); the mount then goes through /proc/self/fd.
    sources = [os.open(m["source"], os.O_PATH) for m in ordered]
    try:
        for mount, source in zip(ordered, sources, strict=True):
            target = Path(mount["target"])
            _ensure_target(stat.S_ISDIR(os.fstat(source).st_mode), target)
            _mount(f"/proc/self/fd/{source}", str(target), MS_BIND | MS_REC)
            if mount.get("read_only"):
                _mount(None, str(target), MS_BIND | MS_REMOUNT | MS_RDONLY)
    finally:
        for source in sources:
            os.close(source)


def become_container(spec: dict[str, Any]) -> None:
    if spec.get("cgroup"):
        # Join the memory cgroup before exec: every process of the container is then limited.
        Path(spec["cgroup"], "cgroup.procs").write_text(str(os.getpid()))
    bind_mounts(spec["mounts"])
    socket.sethostname(spec["hostname"])
    working_dir = Path(spec["working_dir"])
    working_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(working_dir)
    if spec.get("gid") is not None or spec.get("uid") is not None:
        os.setgroups([int(g) for g in spec.get("groups", [])])
        if spec.get("gid") is not None:
            os.setgid(int(spec["gid"]))
        if spec.get("uid") is not None:
            os.setuid(int(spec["uid"]))
    argv: list[str] = spec["argv"]
    os.execvpe(argv[0], argv, spec["env"])


def main() -> None:
    spec_path = Path(sys.argv[1])
    spec: dict[str, Any] = json.loads(spec_path.read_text())
    spec_path.unlink()
    # Opened now, while its path is still visible (mounts may cover it); not inherited by the container.
    start_error = os.open(spec["start_error_path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        become_container(spec)
    except OSError as error:
        # Reported as the kubelet's StartError (exit code 128) with this message.
        message = f"failed to start container: {error}"
        if error.errno == errno.EACCES and spec.get("uid") not in (None, 0):
            message += f" (runAsUser {spec['uid']} must be able to reach and execute it)"
        os.write(start_error, message.encode())
        print(message, file=sys.stderr)
        sys.exit(START_ERROR_EXIT_CODE)


if __name__ == "__main__":
    main()
