"""Jobs on the node agent: an Indexed Job whose pods talk by DNS name, and owner garbage collection."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kubetune_devtools.testing.operator_harness import CHECKOUT_IMAGE

# `core`, `batch`, `agent_dir` and the node-agent version check come from tests/e2e/conftest.py.
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("node_agent_is_this_checkout")]


COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"

RENDEZVOUS = """
import os, socket, sys, time
rank = int(os.environ["RANK"])
port = 29411
if rank == 0:
    server = socket.create_server((os.environ["POD_IP"], port))
    server.settimeout(60)
    connection, peer = server.accept()
    print("rank 0 got", connection.recv(100).decode(), flush=True)
    connection.sendall(b"welcome")
else:
    master = os.environ["MASTER_ADDR"]
    deadline = time.time() + 60
    while True:
        try:
            connection = socket.create_connection((master, port), timeout=5)
            break
        except OSError as error:  # the master may not have an IP or a listening socket yet
            if time.time() > deadline:
                sys.exit(f"cannot reach {master}: {error}")
            time.sleep(0.2)
    connection.sendall(f"hello from rank {rank}".encode())
    reply = connection.recv(100).decode()
    print("rank 1 got", reply, "resolving", master, "to", socket.gethostbyname(master), flush=True)
"""


def indexed_job(name: str, service: str) -> dict[str, Any]:
    labels = {"kt-e2e-job": name}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed",
            "completions": 2,
            "parallelism": 2,
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "subdomain": service,
                    "restartPolicy": "Never",
                    "affinity": {
                        "podAntiAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "labelSelector": {"matchLabels": labels},
                                    "topologyKey": "kubernetes.io/hostname",
                                }
                            ]
                        }
                    },
                    "containers": [
                        {
                            "name": "worker",
                            "image": CHECKOUT_IMAGE,
                            "command": ["python3", "-c", RENDEZVOUS],
                            "env": [
                                {
                                    "name": "RANK",
                                    "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX}},
                                },
                                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                                {"name": "MASTER_ADDR", "value": f"{name}-0.{service}"},
                            ],
                        }
                    ],
                },
            },
        },
    }


def job_pods(core: client.CoreV1Api, namespace: str, job: str) -> list[Any]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items)


def wait_until(what: str, check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def test_indexed_job_pods_reach_each_other_by_dns_name_across_nodes(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str, agent_dir: Path
) -> None:
    service = {
        "metadata": {"name": "workers"},
        "spec": {"clusterIP": "None", "selector": {"kt-e2e-job": "ring"}, "ports": [{"port": 29411}]},
    }
    core.create_namespaced_service(namespace, service)
    batch.create_namespaced_job(namespace, indexed_job("ring", "workers"))

    def finished() -> Any:
        status = batch.read_namespaced_job_status("ring", namespace).status
        return status if (status.succeeded or 0) == 2 or (status.failed or 0) > 0 else None

    status = wait_until("the Job to finish", finished)
    pods = job_pods(core, namespace, "ring")
    logs = {
        p.metadata.annotations["batch.kubernetes.io/job-completion-index"]: (
            agent_dir / "pods" / f"{namespace}_{p.metadata.name}_{p.metadata.uid}" / "worker.log"
        ).read_text()
        for p in pods
    }
    assert status.succeeded == 2, logs
    assert len({p.spec.node_name for p in pods}) == 2  # anti-affinity spread them over both nodes
    ips = {p.metadata.annotations["batch.kubernetes.io/job-completion-index"]: p.status.pod_ip for p in pods}
    assert ips["0"] != ips["1"]
    # (The peer's source address is not checked: outgoing connections leave from 127.0.0.1, see docs.)
    assert "rank 0 got hello from rank 1" in logs["0"]
    assert f"rank 1 got welcome resolving ring-0.workers to {ips['0']}" in logs["1"]


def test_deleting_the_owner_garbage_collects_job_and_pods(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "owned",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
            ],
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "main",
                            "image": CHECKOUT_IMAGE,
                            "command": ["python3", "-c", "import time; time.sleep(600)"],
                        }
                    ],
                }
            },
        },
    }
    batch.create_namespaced_job(namespace, job)
    wait_until(
        "the Job's pod to run",
        lambda: any(p.status.phase == "Running" for p in job_pods(core, namespace, "owned")),
    )
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")
    wait_until("the Job to be collected", lambda: not batch.list_namespaced_job(namespace).items, timeout=60)
    wait_until("its pods to be gone", lambda: not job_pods(core, namespace, "owned"), timeout=60)
