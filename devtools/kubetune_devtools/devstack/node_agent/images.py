"""Container images: a pod's containers run inside the image its spec names, found in this machine's local
image store (containers-storage, where `make images` builds with podman or buildah). Nothing is pulled: the
local stack has no registry access, so an image that is not in the store ends in ErrImagePull and then
ImagePullBackOff, as a kubelet reports an image it cannot pull.

One image repository is special, the fast mode of the inner development loop: `kubetune.dev/checkout` is
not looked up; its containers run the checkout's own virtual environment (the tests' fake workloads live
only there). The demo and the deploy tests never use it.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHECKOUT_IMAGE = "kubetune.dev/checkout"
"""Repository of the fast mode: `kubetune.dev/checkout` (any tag) runs the checkout's environment."""
PODMAN_TIMEOUT_SECONDS = 120


class ImageNotPresentError(Exception):
    """The image is not in the local store (the kubelet's ErrImagePull)."""


def repository_of(image: str) -> str:
    """`repo[:tag][@digest]` without tag and digest (a registry's port is not a tag)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def runs_checkout(image: str) -> bool:
    return repository_of(image) == CHECKOUT_IMAGE


@dataclass(frozen=True)
class ImageConfig:
    """What a runtime takes from an image: its root filesystem and its OCI config's process defaults."""

    image_id: str
    rootfs: Path
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""

    @classmethod
    def from_inspect(cls, inspected: Mapping[str, Any], rootfs: Path) -> ImageConfig:
        config = inspected.get("Config") or {}
        return cls(
            image_id=str(inspected["Id"]),
            rootfs=rootfs,
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
            env=tuple(config.get("Env") or ()),
            working_dir=str(config.get("WorkingDir") or ""),
            user=str(config.get("User") or ""),
        )


def container_argv(image: ImageConfig, command: Sequence[str], args: Sequence[str]) -> list[str]:
    """Kubernetes' rule: `command` replaces the ENTRYPOINT (and drops CMD), `args` replaces CMD."""
    if command:
        return [*command, *args]
    return [*image.entrypoint, *(args if args else image.cmd)]


def image_env(image: ImageConfig) -> dict[str, str]:
    """The image's `Env` lines as a mapping (the pod's env is laid over it)."""
    env: dict[str, str] = {}
    for line in image.env:
        name, _, value = line.partition("=")
        env[name] = value
    return env


def _passwd_entry(rootfs: Path, user: str) -> tuple[int, int, str] | None:
    """uid, gid and home of `user` (a name or a uid) in the image's /etc/passwd."""
    passwd = rootfs / "etc" / "passwd"
    if not passwd.is_file():
        return None
    for line in passwd.read_text(errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and user in (fields[0], fields[2]):
            return int(fields[2]), int(fields[3]), fields[5]
    return None


def image_user(image: ImageConfig) -> tuple[int, int | None]:
    """The image's USER as uid and gid (None: the user's own group); an empty USER is root.

    Raises ValueError for a user name the image's /etc/passwd does not know."""
    user, _, group = image.user.partition(":")
    if not user:
        return 0, 0
    if user.isdigit():
        uid = int(user)
    else:
        entry = _passwd_entry(image.rootfs, user)
        if entry is None:
            raise ValueError(f"the image's USER {user!r} is not in its /etc/passwd")
        uid = entry[0]
    gid = int(group) if group.isdigit() else None
    return uid, gid


def home_of(image: ImageConfig, uid: int) -> str:
    """HOME as a runtime sets it when neither image nor pod does: the user's passwd entry, else /."""
    entry = _passwd_entry(image.rootfs, str(uid))
    return entry[2] if entry else "/"


def local_image_id(image: str) -> str:
    """The store's ID of `image`: what the agent reports as a container's `imageID`."""
    inspect = ["podman", "image", "inspect", "--format", "{{.Id}}", image]
    return subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.strip()


class LocalImageStore:
    """The images podman sees (containers-storage), each mounted read-only once per agent (the mount is
    the lower layer of every container's own writable overlay, made by the launcher)."""

    def __init__(self) -> None:
        self._mounted: dict[str, Path] = {}

    def resolve(self, image: str) -> ImageConfig:
        """The image's config and root filesystem; ImageNotPresentError when the store does not have it."""
        if shutil.which("podman") is None:
            raise ImageNotPresentError(
                f'image "{image}": podman is not installed, so the local image store cannot be read '
                "(`make tools`, or `bash hack/install-system-packages.sh images`)"
            )
        inspect = self._podman("image", "inspect", image)
        if inspect.returncode != 0:
            raise ImageNotPresentError(
                f'image "{image}" is not in the local image store and the local stack does not pull '
                "(build it with `make images`, or load it with `podman load`)"
            )
        inspected: dict[str, Any] = json.loads(inspect.stdout)[0]
        image_id = str(inspected["Id"])
        rootfs = self._mounted.get(image_id)
        if rootfs is None:
            mount = self._podman("image", "mount", image_id)
            if mount.returncode != 0:
                raise RuntimeError(f"podman image mount {image}: {mount.stderr.strip()}")
            rootfs = Path(mount.stdout.strip())
            self._mounted[image_id] = rootfs
            log.info("image %s (%s) mounted at %s", image, image_id[:12], rootfs)
        return ImageConfig.from_inspect(inspected, rootfs)

    def unmount_all(self) -> None:
        for image_id in self._mounted:
            self._podman("image", "unmount", image_id)
        self._mounted.clear()

    @staticmethod
    def _podman(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args], capture_output=True, text=True, check=False, timeout=PODMAN_TIMEOUT_SECONDS
        )
