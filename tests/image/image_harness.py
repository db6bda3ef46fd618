"""Helpers of the image tests: the images built from the Dockerfile by hack/build-images.sh, run by runc.

The build uses podman (containers-storage) so that the tests can mount an image's root filesystem and
list it; its layers are cached, so a warm build takes seconds (a cold one builds the Debian base and the
venv: about two minutes for the operator image). A container runs from an OCI bundle made here: the
image's own user, environment, working directory and entrypoint, its root filesystem mounted read-only
and a tmpfs at /tmp, as the chart's pods have them (readOnlyRootFilesystem, emptyDir /tmp). runc rather
than `podman run`: podman raises the nofile/nproc limits, which this sandboxed host does not allow.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "hack" / "build-images.sh"
# Seconds for one build: a cold operator build is ~2 min; this bounds a hung download, not a normal build.
BUILD_TIMEOUT = 1200
SIZE_LIMITS = Path(__file__).with_name("size-limits.json")
# A change may grow an image by this much before the committed limit must be raised with it.
SIZE_TOLERANCE = 0.10
_container_ids = itertools.count()


def project_version() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert isinstance(version, str)
    return version


@dataclass(frozen=True)
class Image:
    ref: str
    rootfs: Path
    config: dict[str, Any]
    """The OCI image config's `config` block (User, Env, WorkingDir, Entrypoint, ...)."""
    size_bytes: int
    layers: list[str]
    """Diff IDs of the image's layers, base first."""


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def _required_tools() -> None:
    missing = [tool for tool in ("podman", "buildah", "runc", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"the image tests need {', '.join(missing)}"
            " (Debian: apt-get install podman buildah runc mmdebstrap)"
        )


def build_and_mount(target: str) -> Iterator[Image]:
    _required_tools()
    env = {**os.environ, "KUBETUNE_IMAGE_TOOL": "podman"}
    subprocess.run(["bash", str(BUILD_SCRIPT), "build", target], check=True, env=env, timeout=BUILD_TIMEOUT)
    ref = f"localhost/kubetune/{target}:{project_version()}"
    inspect = subprocess.run(["podman", "image", "inspect", ref], check=True, capture_output=True, text=True)
    inspected = json.loads(inspect.stdout)[0]
    mountpoint = subprocess.run(["podman", "image", "mount", ref], check=True, capture_output=True, text=True)
    try:
        yield Image(
            ref=ref,
            rootfs=Path(mountpoint.stdout.strip()),
            config=inspected["Config"],
            size_bytes=int(inspected["Size"]),
            layers=list(inspected["RootFS"]["Layers"]),
        )
    finally:
        subprocess.run(["podman", "image", "unmount", ref], check=False, capture_output=True)


def _user_ids(user: str) -> tuple[int, int]:
    """`uid:gid` as the Dockerfile's USER states it (numeric: Kubernetes' runAsNonRoot can check it)."""
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def run_in_image(
    image: Image,
    args: Sequence[str] | None,
    workdir: Path,
    *,
    timeout: float = 120,
    mounts: Mapping[str, Path] | None = None,
    env: Mapping[str, str] | None = None,
) -> Run:
    """Runs the image's entrypoint (or `args` instead) in an OCI bundle under `workdir`, as a pod would;
    `mounts` bind-mounts host directories (container path, which must exist in the image -> host path);
    `env` adds to the image's environment."""
    container_id = f"kubetune-image-test-{os.getpid()}-{next(_container_ids)}"
    bundle_dir = workdir / container_id
    bundle_dir.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle_dir, check=True)
    spec = json.loads((bundle_dir / "config.json").read_text())
    uid, gid = _user_ids(image.config["User"])
    process = spec["process"]
    process.update(
        terminal=False,
        user={"uid": uid, "gid": gid},
        env=[*image.config["Env"], *(f"{name}={value}" for name, value in (env or {}).items())],
        cwd=image.config.get("WorkingDir") or "/",
        args=list(args) if args is not None else image.config["Entrypoint"],
    )
    spec["root"] = {"path": str(image.rootfs), "readonly": True}
    tmp_options = ["nosuid", "nodev", "mode=1777"]
    spec["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": tmp_options})
    for destination, source in (mounts or {}).items():
        spec["mounts"].append(
            {"destination": destination, "type": "bind", "source": str(source), "options": ["rbind", "rw"]}
        )
    spec["hostname"] = "kubetune-image-test"
    (bundle_dir / "config.json").write_text(json.dumps(spec))
    try:
        result = subprocess.run(
            ["runc", "run", "--bundle", str(bundle_dir), container_id],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    finally:
        subprocess.run(["runc", "delete", "--force", container_id], check=False, capture_output=True)
    return Run(result.returncode, result.stdout, result.stderr)


def assert_within_size_limit(target: str, image: Image) -> None:
    limit = json.loads(SIZE_LIMITS.read_text())[target]["bytes"]
    print(f"{target} image: {image.size_bytes} bytes (committed limit {limit})")
    assert image.size_bytes <= limit * (1 + SIZE_TOLERANCE), (
        f"{image.ref} is {image.size_bytes} bytes, more than {SIZE_TOLERANCE:.0%} over the committed "
        f"{limit} in {SIZE_LIMITS.name}: shrink it, or raise the limit in the same commit and say why"
    )
