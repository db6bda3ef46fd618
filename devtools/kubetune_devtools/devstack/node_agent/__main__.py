"""`python -m kubetune_devtools.devstack.node_agent`: run the node agent until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from kubetune_devtools.devstack.node_agent.agent import NodeAgent
from kubetune_devtools.devstack.node_agent.config import DEFAULT_KUBECONFIG, DEFAULT_STATE_DIR, AgentConfig
from kubetune_devtools.devstack.node_agent.kube import Kube


def parse_args(argv: list[str] | None = None) -> AgentConfig:
    # argparse rather than typer: the stack starts this module directly and it needs no rich CLI.
    parser = argparse.ArgumentParser(prog="node_agent", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, default=DEFAULT_KUBECONFIG)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--node-prefix", default="kt-node")
    parser.add_argument("--cpu", default="8")
    parser.add_argument("--memory", default="32Gi")
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--gpu-resource", default="nvidia.com/gpu")
    parser.add_argument("--restart-backoff", type=float, default=10.0, help="first restart delay (seconds)")
    args = parser.parse_args(argv)
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")
    return AgentConfig(
        kubeconfig=args.kubeconfig,
        state_dir=args.state_dir,
        nodes=args.nodes,
        node_prefix=args.node_prefix,
        cpu=args.cpu,
        memory=args.memory,
        gpus=args.gpus,
        gpu_resource=args.gpu_resource,
        restart_backoff_seconds=args.restart_backoff,
    )


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent = NodeAgent(config, Kube(str(config.kubeconfig)))
    signal.signal(signal.SIGTERM, agent.stop)
    signal.signal(signal.SIGINT, agent.stop)
    agent.run()


if __name__ == "__main__":
    main()
