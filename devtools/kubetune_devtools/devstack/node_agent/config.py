"""The agent's settings; every default is the one the local stack starts it with."""

from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import kubetune_operator
from kubetune_devtools.devstack.layout import StackLayout, default_state_dir


def _project_environment() -> tuple[Path, ...]:
    """The directories that make up the pods' "image": the venv and the checkout it installs editable."""
    checkout = Path(kubetune_operator.__file__).resolve().parents[2]
    return (Path(sys.prefix).resolve(), checkout)


KUBELET_PORT = 10250  # the kubelet's own; each node listens on its own address, so they do not collide


@dataclass(frozen=True)
class AgentConfig:
    kubeconfig: Path
    state_dir: Path
    nodes: int = 2
    node_prefix: str = "kt-node"
    cpu: str = "8"
    memory: str = "32Gi"
    gpus: int = 8
    gpu_resource: str = "nvidia.com/gpu"
    max_pods: int = 110
    pod_cidr: str = "127.64.0.0/10"
    # The kubelet starts at 10 s and doubles up to 5 min; tests may shorten it.
    restart_backoff_seconds: float = 10.0
    heartbeat_seconds: float = 10.0
    # Where `python3`, `accelerate` and `kubetune` resolve for pods: the project's own environment.
    python_bin_dir: Path = Path(sys.executable).parent
    # Kept visible in every container even where the container's own /tmp covers the host's (a CI
    # checkout under /tmp would otherwise vanish from the pods).
    image_paths: tuple[Path, ...] = _project_environment()

    def node_names(self) -> list[str]:
        return [f"{self.node_prefix}-{index}" for index in range(self.nodes)]

    def node_address(self, node: str) -> str:
        """Each node has its own loopback address 127.1.S.N, its InternalIP and pods' hostIP.

        S comes from the state directory, so two stacks on one machine (parallel test runs) rarely
        share node addresses and their kubelet endpoints do not fight over the same address and port.
        """
        subnet = zlib.crc32(str(self.state_dir.resolve()).encode()) % 254 + 1
        return f"127.1.{subnet}.{self.node_names().index(node) + 1}"

    @property
    def pods_dir(self) -> Path:
        return self.state_dir / "pods"


# The local stack's own paths (`kubetune dev up`), so a bare `python -m ...node_agent` joins it.
DEFAULT_STATE_DIR = StackLayout(default_state_dir()).node_agent_dir
DEFAULT_KUBECONFIG = StackLayout(default_state_dir()).admin_kubeconfig
