"""Pods run inside their container images: the node agent finds the image in this machine's local image
store (containers-storage), makes it the container's root and reports an image it does not have as a
kubelet reports one it cannot pull. An operator reports such a job as docs/operator.md says.

Runs against the local stack; the operator image is built (cached layers) by `build_images`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import kubetune_operator
from kubetune_devtools.devstack.binaries import build_images
from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.node_agent.images import local_image_id
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import Objects, OperatorProcess, finetunejob, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("node_agent_is_this_checkout")]

NAMESPACE_GLOB = "t-test-image-*"
CHECKOUT = Path(kubetune_operator.__file__).resolve().parents[2]
# A file that only the operator image holds: its locked requirements (Dockerfile).
IMAGE_ONLY_FILE = "/opt/requirements.txt"
MISSING_IMAGE = "kubetune/not-built-here:0.0.0"
SCRIPT = f"""
id -u; id -g; pwd
test -f {IMAGE_ONLY_FILE} && echo image-file-visible
test -e {CHECKOUT} && echo checkout-visible || echo checkout-hidden
python3 -c 'import kubetune_operator; print(kubetune_operator.__file__)'
touch /written-to-root 2>/dev/null && echo root-writable || echo root-read-only
echo done > /tmp/scratch && cat /tmp/scratch
sleep 30
"""


@pytest.fixture(scope="module")
def operator_image() -> str:
    (image,) = build_images("operator")
    return image


def image_pod(name: str, image: str, command: list[str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        # No runAsUser: the image's USER (1000) must be the one that runs.
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
        },
    }
    if command is not None:
        container["command"] = command
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "containers": [container]},
    }


def create_pod(core: client.CoreV1Api, namespace: str, pod: dict[str, Any]) -> None:
    api: Any = core  # Any: the stubs want a V1Pod where the client takes a plain dict
    api.create_namespaced_pod(namespace, pod)


def read_pod(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any]:
    api: Any = core  # Any: with _preload_content=False it returns the raw response, not a V1Pod
    pod: dict[str, Any] = json.loads(api.read_namespaced_pod(name, namespace, _preload_content=False).data)
    return pod


def pod_dir(agent_dir: Path, pod: dict[str, Any]) -> Path:
    meta = pod["metadata"]
    return agent_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"


def test_image_pod_runs_inside_its_image_as_the_image_user_and_cannot_see_the_checkout(
    core: client.CoreV1Api, namespace: str, agent_dir: Path, operator_image: str
) -> None:
    create_pod(core, namespace, image_pod("inside", operator_image, ["sh", "-c", SCRIPT]))
    pod = wait_until(
        lambda: (p := read_pod(core, namespace, "inside"))["status"].get("phase") == "Running" and p,
        120,
        "the pod to run",
    )
    assert pod["status"]["containerStatuses"][0]["imageID"] == local_image_id(operator_image)
    directory = pod_dir(agent_dir, pod)
    log = directory / "main.log"
    wait_until(
        lambda: log.exists() and "done" in log.read_text(), 60, "the pod's script to finish its checks"
    )
    lines = log.read_text().split()
    assert lines[:3] == ["1000", "1000", "/home/kubetune"], lines  # the image's USER and WORKDIR
    assert "image-file-visible" in lines and "checkout-hidden" in lines, lines
    assert "/opt/kubetune/kubetune_operator/__init__.py" in lines, (
        lines
    )  # the image's code, not the checkout's
    assert "root-read-only" in lines, lines
    # Seen from this machine: the container's root is the image's file system, not this one.
    pid = json.loads((directory / "containers" / "main" / "pid.json").read_text())["pid"]
    root = Path(f"/proc/{pid}/root")
    assert (root / IMAGE_ONLY_FILE.lstrip("/")).is_file()
    assert not (root / str(CHECKOUT).lstrip("/")).exists()
    assert os.stat(root).st_ino != os.stat("/").st_ino or os.stat(root).st_dev != os.stat("/").st_dev
    core.delete_namespaced_pod("inside", namespace, grace_period_seconds=0)


def test_image_not_in_the_local_store_ends_in_image_pull_back_off(
    core: client.CoreV1Api, namespace: str
) -> None:
    create_pod(core, namespace, image_pod("missing", MISSING_IMAGE))

    def waiting_reason() -> str | None:
        statuses = read_pod(core, namespace, "missing")["status"].get("containerStatuses") or []
        waiting = (statuses[0]["state"].get("waiting") or {}) if statuses else {}
        return waiting.get("reason")

    first = wait_until(
        lambda: waiting_reason() in ("ErrImagePull", "ImagePullBackOff") and waiting_reason(), 60, ""
    )
    assert first in ("ErrImagePull", "ImagePullBackOff")
    # The back-off starts at the agent's restart back-off (10 s, as `kubetune dev up` starts it).
    wait_until(lambda: waiting_reason() == "ImagePullBackOff", 60, "ImagePullBackOff after the first retry")
    pod = read_pod(core, namespace, "missing")
    assert pod["status"]["phase"] == "Pending"
    assert "make images" in pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=missing").items
    reasons = {(event.reason, event.type) for event in events}
    assert ("Failed", "Warning") in reasons and ("BackOff", "Warning") in reasons, reasons
    assert any(MISSING_IMAGE in (event.message or "") for event in events)


@pytest.fixture(scope="module")
def operator(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(stack.kubeconfig, log, namespaces=[NAMESPACE_GLOB]).start()
    yield process
    process.stop()
    print(process.log_tail(40))


@pytest.fixture
def objects(k8s: KubeClients, namespace: str, operator: OperatorProcess) -> Objects:
    return Objects(k8s.api_client, namespace)


def test_image_missing_fails_the_finetunejob_with_image_pull_back_off(objects: Objects) -> None:
    objects.create(finetunejob("unpulled", image=MISSING_IMAGE, runPolicy={"maxRestarts": 3}))
    started = time.monotonic()
    status = wait_until(
        lambda: (s := objects.status("finetunejobs", "unpulled")).get("phase") == "Failed" and s,
        90,
        "the FineTuneJob to fail",
    )
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "ImagePullBackOff", failed
    assert MISSING_IMAGE in failed["message"] and "make images" in failed["message"], failed
    assert status.get("restarts", 0) == 0  # pulling the same image again cannot help
    assert time.monotonic() - started < 90
