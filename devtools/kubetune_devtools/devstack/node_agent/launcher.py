"""Runs inside the pod's fresh mount+UTS namespaces (made by `unshare`), then becomes the container.

The agent starts `unshare --mount --uts --propagation private python -m ...launcher SPEC`: as root in
the new namespaces this bind-mounts the pod's volumes, hosts file and termination-log file at the
paths the container asks for, sets the pod's hostname, drops to runAsUser/runAsGroup and execs the
command in the same process (so the agent's pid, signals and exit status are the container's).
The spec file holds resolved Secrets: it is read and deleted first.

With a `rootfs` (a container image, images.py), the container's root is the image: an overlay of the
image's read-only root filesystem and the container's own writable layer (read-only again under
readOnlyRootFilesystem, after the mount points are made), with its own /proc, a small /dev, /sys
read-only and the volumes mounted in; `pivot_root` then makes it `/`, so nothing of this machine's
file system (the checkout, the venv, other pods' files) is reachable from the container.
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
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2
# pivot_root(2) has no libc wrapper: its syscall number per architecture (os.uname().machine).
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
# What a container runtime puts in a container's /dev (bind-mounted from this machine's).
DEVICE_NODES = ("null", "zero", "full", "random", "urandom", "tty")
START_ERROR_EXIT_CODE = 128

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(
    source: str | None, target: str, flags: int, fstype: str | None = None, data: str | None = None
) -> None:
    result = _libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mount {source} -> {target}: {os.strerror(code)}")


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _ensure_target(source_is_dir: bool, target: Path) -> None:
    """A bind mount needs an existing target of the same kind; a missing one is created."""
    if target.exists():
        return
    if source_is_dir:
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()


MAX_SYMLINKS = 40  # as the kernel's path walk (ELOOP beyond)


def path_in_root(root: str, path: str) -> Path:
    """`path` as the container sees it, resolved on this machine under `root`: a symbolic link in the
    image (Debian's /var/run -> /run) is followed inside the root, never out to this machine's file
    system, as runtimes resolve mount targets (runc's securejoin). Missing components are kept."""
    if root == "/":
        return Path(path)
    parts = list(Path(path.lstrip("/")).parts)
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = Path(root, *resolved, part)
        if candidate.is_symlink():
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, f"too many symbolic links in {path}")
            link = os.readlink(candidate)
            if link.startswith("/"):
                resolved = []
            parts = list(Path(link.lstrip("/")).parts) + parts
            continue
        resolved.append(part)
    return Path(root, *resolved)


def bind_mounts(mounts: list[dict[str, Any]], root: str = "/") -> None:
    # Shallow targets first, so a mount nested in another volume lands inside it, not under it.
    ordered = sorted(mounts, key=lambda m: len(Path(m["target"]).parts))
    # Every source is opened before anything is mounted: covering /tmp must not hide a source that
    # lives under /tmp (a state directory there); the mount then goes through /proc/self/fd.
    sources = [os.open(m["source"], os.O_PATH) for m in ordered]
    try:
        for mount, source in zip(ordered, sources, strict=True):
            target = path_in_root(root, mount["target"])
            _ensure_target(stat.S_ISDIR(os.fstat(source).st_mode), target)
            _mount(f"/proc/self/fd/{source}", str(target), MS_BIND | MS_REC)
            if mount.get("read_only"):
                _mount(None, str(target), MS_BIND | MS_REMOUNT | MS_RDONLY)
    finally:
        for source in sources:
            os.close(source)


def mount_image_root(rootfs: dict[str, Any]) -> str:
    """The container's root: the image's layers under the container's own writable layer, plus the
    kernel file systems a runtime gives every container. Returns the new root's path."""
    root = str(rootfs["merged"])
    for directory in (rootfs["upper"], rootfs["work"], root):
        Path(directory).mkdir(parents=True, exist_ok=True)
    layers = f"lowerdir={rootfs['lower']},upperdir={rootfs['upper']},workdir={rootfs['work']}"
    _mount("overlay", root, 0, "overlay", layers)
    proc = Path(root, "proc")
    proc.mkdir(exist_ok=True)
    _mount("proc", str(proc), MS_NOSUID | MS_NODEV | MS_NOEXEC, "proc")
    sys_dir = Path(root, "sys")
    sys_dir.mkdir(exist_ok=True)
    _mount("/sys", str(sys_dir), MS_BIND | MS_REC)
    _mount(None, str(sys_dir), MS_BIND | MS_REMOUNT | MS_RDONLY)
    dev = Path(root, "dev")
    dev.mkdir(exist_ok=True)
    _mount("tmpfs", str(dev), MS_NOSUID, "tmpfs", "mode=755,size=65536k")
    for node in DEVICE_NODES:
        (dev / node).touch()
        _mount(f"/dev/{node}", str(dev / node), MS_BIND)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        (dev / name).symlink_to(target)
    for directory in ("pts", "shm"):
        (dev / directory).mkdir()
    _mount("shm", str(dev / "shm"), MS_NOSUID | MS_NODEV, "tmpfs", "mode=1777,size=65536k")
    return root


def pivot_into(root: str, read_only: bool) -> None:
    """Make `root` the container's `/` and drop every path of this machine from its view."""
    if read_only:
        # Only the root's own mount turns read-only: the volumes mounted inside it keep their modes.
        _mount(None, root, MS_BIND | MS_REMOUNT | MS_RDONLY)
    os.chdir(root)
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise OSError(errno.ENOSYS, f"pivot_root: unknown syscall number on {os.uname().machine}")
    # pivot_root(".", "."): the old root ends up stacked under the new one, then is detached.
    _check(_libc.syscall(number, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")


def become_container(spec: dict[str, Any]) -> None:
    if spec.get("cgroup"):
        # Join the memory cgroup before exec: every process of the container is then limited.
        Path(spec["cgroup"], "cgroup.procs").write_text(str(os.getpid()))
    rootfs = spec.get("rootfs")
    if rootfs:
        root = mount_image_root(rootfs)
        bind_mounts(spec["mounts"], root)
        # Made in the container's writable layer before the root may turn read-only, as runtimes do.
        path_in_root(root, spec["working_dir"]).mkdir(parents=True, exist_ok=True)
        pivot_into(root, bool(rootfs.get("read_only")))
    else:
        bind_mounts(spec["mounts"])
    socket.sethostname(spec["hostname"])
    working_dir = Path(spec["working_dir"])
    if not working_dir.is_dir():
        working_dir.mkdir(parents=True)
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
