"""Writes a pod's volumes and hosts file under its directory."""

from __future__ import annotations

import os
from pathlib import Path

from kubetune_devtools.devstack.node_agent.volumes import VolumePlan

EMPTY_DIR_MODE = 0o777  # as the kubelet makes emptyDir: writable whatever runAsUser is


def write_volume(plan: VolumePlan, directory: Path, fs_group: int | None) -> str:
    """Materialise one volume; returns the path containers bind-mount."""
    if plan.host_path is not None:
        return plan.host_path
    directory.mkdir(parents=True, exist_ok=True)
    if plan.empty_dir:
        directory.chmod(EMPTY_DIR_MODE)
        return str(directory)
    directory.chmod(0o755)
    for relative, (content, mode) in plan.files.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode)
        if fs_group is not None:
            os.chown(target, -1, fs_group)
    return str(directory)


def write_in_place(path: Path, content: str) -> bool:
    """Rewrite a file keeping its inode, since pods see it through a bind mount; False if unchanged.

    (A rename would swap the inode and leave running pods with the old file.)
    """
    data = content.encode()
    if path.exists() and path.read_bytes() == data:
        return False
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, data)
        os.ftruncate(descriptor, len(data))
    finally:
        os.close(descriptor)
    return True
