"""Find the stack's binaries, building or installing whatever is missing.

kube-*, MinIO and Prometheus are built from the Go module proxy by the hack/ scripts (cached by version
outside the checkout); etcd comes from Debian's etcd-server. (Debian's prometheus package is built
without Kubernetes service discovery, see hack/build-prometheus.sh.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from kubetune_operator.devstack.commands import Binaries

REPO_ROOT = Path(__file__).resolve().parents[3]
HACK_DIR = REPO_ROOT / "hack"
DEBIAN_PACKAGES = {"etcd": "etcd-server"}


class BinaryError(RuntimeError):
    """A binary is missing and could not be built or installed; the message says what to do."""


def _run_build_script(script: str) -> str:
    path = HACK_DIR / script
    if not path.exists():
        raise BinaryError(f"{path} not found: run `kubetune dev up` from a kubetune checkout")
    # The script's progress goes to stderr (shown live); its last stdout line is the result path.
    result = subprocess.run(
        ["bash", str(path)], stdout=subprocess.PIPE, stderr=sys.stderr, text=True, check=False
    )
    if result.returncode != 0:
        raise BinaryError(f"{script} failed with exit code {result.returncode} (see its output above)")
    return result.stdout.strip().splitlines()[-1]


def _debian_binary(name: str) -> Path:
    found = shutil.which(name)
    if found:
        return Path(found)
    package = DEBIAN_PACKAGES[name]
    if shutil.which("apt-get") is None:
        raise BinaryError(f"`{name}` is not on PATH and apt-get is not available: install `{package}`")
    print(f"installing Debian package {package} (for `{name}`)", file=sys.stderr)
    install = ["apt-get", "install", "-y", "-q", package]
    env_prefix = ["env", "DEBIAN_FRONTEND=noninteractive"]
    for command in (["apt-get", "update", "-q"], install):
        if subprocess.run(env_prefix + command, stdout=sys.stderr, check=False).returncode != 0:
            raise BinaryError(f"`{' '.join(command)}` failed: install `{package}` yourself (needs root)")
    # The package may enable a system service; the stack runs its own instance with its own flags.
    if shutil.which("systemctl") is not None:
        subprocess.run(["systemctl", "disable", "--now", "etcd"], capture_output=True, check=False)
    found = shutil.which(name)
    if not found:
        raise BinaryError(f"installed `{package}` but `{name}` is still not on PATH")
    return Path(found)


def ensure_binaries() -> Binaries:
    """Every binary the stack runs; builds/installs the missing ones (a cold build takes ~25 min)."""
    k8s_dir = Path(_run_build_script("build-k8s.sh"))
    minio = Path(_run_build_script("build-minio.sh"))
    prometheus = Path(_run_build_script("build-prometheus.sh"))
    return Binaries(
        etcd=_debian_binary("etcd"),
        kube_apiserver=k8s_dir / "kube-apiserver",
        kube_controller_manager=k8s_dir / "kube-controller-manager",
        kube_scheduler=k8s_dir / "kube-scheduler",
        minio=minio,
        prometheus=prometheus,
    )
