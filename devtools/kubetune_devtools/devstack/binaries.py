"""Find the stack's binaries and the client tools, building or installing whatever is missing.

Everything comes from pins the checkout commits, never from whatever happens to be on PATH:
kube-*, kubectl, MinIO, Prometheus, promtool and Helm are built by hack/build-go-tool.sh from
hack/tools/<tool>/go.mod + go.sum (-mod=readonly; cached by version outside the checkout), and etcd is
Debian's etcd-server at the version hack/install-system-packages.sh states. (Debian's prometheus package
is built without Kubernetes service discovery, so Prometheus is built too.)
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from kubetune_devtools.devstack.commands import Binaries

REPO_ROOT = Path(__file__).resolve().parents[3]
HACK_DIR = REPO_ROOT / "hack"
ETCD = Path("/usr/bin/etcd")  # where Debian's etcd-server puts it

# Client tool -> the pinned Go tool module that builds it.
CLIENT_TOOLS = {"kubectl": "kubernetes", "helm": "helm", "promtool": "prometheus"}


class BinaryError(RuntimeError):
    """A binary is missing and could not be built or installed; the message says what to do."""


def _run_hack_script(*argv: str) -> str:
    path = HACK_DIR / argv[0]
    if not path.exists():
        raise BinaryError(f"{path} not found: the local stack's tools are built from a kubetune checkout")
    # The script's progress goes to stderr (shown live); its last stdout line is the result path.
    result = subprocess.run(
        ["bash", str(path), *argv[1:]], stdout=subprocess.PIPE, stderr=sys.stderr, text=True, check=False
    )
    if result.returncode != 0:
        raise BinaryError(f"hack/{' '.join(argv)} failed with exit code {result.returncode} (see above)")
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else ""


# Once per process: the pins cannot change under a running process, and `dev up`, `client_tool` and every
# test that runs kubectl/helm/promtool would otherwise start the script again for the same answer.
@functools.cache
def go_tool_dir(tool: str) -> Path:
    """The directory holding the binaries of one pinned Go tool (built on first use)."""
    return Path(_run_hack_script("build-go-tool.sh", tool))


def client_tool(name: str) -> Path:
    """The project's own `kubectl`, `helm` or `promtool` (built on first use; never the one on PATH)."""
    if name not in CLIENT_TOOLS:
        raise BinaryError(f"unknown client tool {name!r}; the project provides {sorted(CLIENT_TOOLS)}")
    path = go_tool_dir(CLIENT_TOOLS[name]) / name
    if not os.access(path, os.X_OK):
        raise BinaryError(f"{path} missing after hack/build-go-tool.sh {CLIENT_TOOLS[name]}")
    return path


def link_client_tools(bin_dir: Path) -> Path:
    """A directory holding only kubectl, helm and promtool (symlinks), for `kubetune dev env`'s PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in CLIENT_TOOLS:
        target = client_tool(name)
        link = bin_dir / name
        temporary = bin_dir / f".{name}.new"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(target)
        temporary.replace(link)  # atomic: a shell using the directory never sees it half-updated
    return bin_dir


def _etcd() -> Path:
    _run_hack_script("install-system-packages.sh", "stack")
    if not os.access(ETCD, os.X_OK):
        raise BinaryError(f"{ETCD} missing after installing etcd-server (hack/install-system-packages.sh)")
    return ETCD


def ensure_binaries() -> Binaries:
    """Every binary the stack and its tests run; builds/installs the missing ones (cold: see
    docs/local-stack.md for the measured time)."""
    kubernetes = go_tool_dir("kubernetes")
    minio = go_tool_dir("minio")
    prometheus = go_tool_dir("prometheus")
    go_tool_dir("helm")
    return Binaries(
        etcd=_etcd(),
        kube_apiserver=kubernetes / "kube-apiserver",
        kube_controller_manager=kubernetes / "kube-controller-manager",
        kube_scheduler=kubernetes / "kube-scheduler",
        minio=minio / "minio",
        prometheus=prometheus / "prometheus",
    )


IMAGE_TARGETS = ("operator", "trainer", "evaluator")


@functools.cache
def build_images(*targets: str) -> tuple[str, ...]:
    """The project's images `kubetune/<target>:<version>` in this machine's containers-storage (where the
    node agent finds a pod's image), built by hack/build-images.sh with podman on first use in a process:
    cached layers make a warm build seconds, a cold one minutes (docs/deploy.md "Images"). Returns their
    references, in the order of `targets`."""
    wanted = targets or IMAGE_TARGETS
    script = HACK_DIR / "build-images.sh"
    if not script.exists():
        raise BinaryError(f"{script} not found: the images are built from a kubetune checkout")
    # The build's own output (hundreds of lines) is shown only when it fails.
    result = subprocess.run(
        ["bash", str(script), "build", *wanted],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "KUBETUNE_IMAGE_TOOL": "podman"},
        check=False,
    )
    if result.returncode != 0:
        raise BinaryError(
            f"hack/build-images.sh build {' '.join(wanted)} failed (exit code {result.returncode}):\n"
            + result.stdout[-4000:]
        )
    version = importlib.metadata.version("kubetune")  # the project version the script tags with
    return tuple(f"kubetune/{target}:{version}" for target in wanted)
