"""Where the local stack keeps its state, and which loopback ports it listens on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STATE_DIR_ENV = "KUBETUNE_DEV_DIR"
CACHE_DIR_ENV = "KUBETUNE_CACHE"


def cache_dir() -> Path:
    """Binaries built from the Go module proxy live here, keyed by version (outside the checkout)."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "kubetune")


def default_state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or cache_dir() / "dev")


@dataclass(frozen=True)
class Ports:
    """Unusual defaults so the stack does not collide with a real cluster's well-known ports."""

    etcd_client: int = 23790
    etcd_peer: int = 23800
    apiserver: int = 16443
    controller_manager: int = 16257
    scheduler: int = 16259
    minio: int = 19000
    minio_console: int = 19001
    prometheus: int = 19090


@dataclass(frozen=True)
class StackLayout:
    """Every path of one stack's state directory, named once."""

    state_dir: Path

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.state_dir / "pids"

    @property
    def etcd_data_dir(self) -> Path:
        return self.state_dir / "etcd"

    @property
    def minio_data_dir(self) -> Path:
        return self.state_dir / "minio"

    @property
    def prometheus_data_dir(self) -> Path:
        return self.state_dir / "prometheus"

    @property
    def prometheus_config(self) -> Path:
        return self.state_dir / "prometheus.yml"

    @property
    def node_agent_dir(self) -> Path:
        return self.state_dir / "node-agent"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def stack_file(self) -> Path:
        """Connection details of the running stack (read by `dev env` and the test fixtures)."""
        return self.state_dir / "stack.json"

    @property
    def s3_credentials_file(self) -> Path:
        return self.state_dir / "s3-credentials.json"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / ".lock"

    def kubeconfig_for(self, user: str) -> Path:
        return self.state_dir / f"{user}.kubeconfig"

    def cert(self, name: str) -> Path:
        return self.pki_dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.pki_dir / f"{name}.key"

    def log(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    def pid_file(self, component: str) -> Path:
        return self.pids_dir / f"{component}.json"

    def make_dirs(self) -> None:
        for directory in (self.state_dir, self.pki_dir, self.logs_dir, self.pids_dir, self.node_agent_dir):
            directory.mkdir(parents=True, exist_ok=True)
