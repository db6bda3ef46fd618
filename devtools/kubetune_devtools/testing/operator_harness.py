"""Helpers for the operator's end-to-end tests: install CRDs, run `kubetune operator` as a real
subprocess (so tests can kill it), build FineTuneJob/EvalJob manifests, poll until a condition holds."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import kubetune_operator.controller
from kubetune_devtools.devstack.binaries import build_images
from kubetune_devtools.devstack.node_agent import images
from kubetune_operator.api import GROUP, VERSION

# The operator's own copy (it ships with the controller), not one next to this harness.
PEERING_MANIFEST = Path(kubetune_operator.controller.__file__).parent / "manifests" / "kopf-peering.yaml"
CHECKOUT_IMAGE = images.CHECKOUT_IMAGE
"""The image whose pods the local stack runs in this checkout's environment (the fakes live only there)."""
FAKE_TRAINER = "kubetune_devtools.testing.fake_trainer"


class WorkloadImages(TypedDict):
    trainer_image: str
    evaluator_image: str


def built_workload_images() -> WorkloadImages:
    """`trainer_image`/`evaluator_image` for an OperatorProcess whose pods run the REAL trainer and
    evaluator inside the project's images, as a cluster runs them (built first: cached layers)."""
    trainer, evaluator = build_images("trainer", "evaluator")
    return {"trainer_image": trainer, "evaluator_image": evaluator}


FAKE_EVALUATOR = "kubetune_devtools.testing.fake_evaluator"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.3) -> T:
    """Poll `check` until it returns something truthy; fail with `what` (and the last value) otherwise."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def apply_manifests(api_client: client.ApiClient, documents: Iterable[dict[str, Any]]) -> None:
    """Create each object, replacing an existing one (CRDs and peering objects only)."""
    # Any: the stubs want model objects where the client accepts plain dicts.
    extensions: Any = client.ApiextensionsV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    for document in documents:
        if document["kind"] == "CustomResourceDefinition":
            try:
                extensions.create_custom_resource_definition(document)
            except ApiException as error:
                if error.status != 409:
                    raise
            continue
        group, version = document["apiVersion"].split("/")
        try:
            custom.create_cluster_custom_object(group, version, "clusterkopfpeerings", document)
        except ApiException as error:
            if error.status != 409:
                raise


def install_peering(
    api_client: client.ApiClient, namespace: str | None = None, name: str = "kubetune"
) -> None:
    """Peering CRDs and ClusterKopfPeering; with `namespace`, a KopfPeering there too (namespaced mode)."""
    documents = [doc for doc in yaml.safe_load_all(PEERING_MANIFEST.read_text()) if doc]
    apply_manifests(api_client, [d for d in documents if d["kind"] == "CustomResourceDefinition"])
    extensions = client.ApiextensionsV1Api(api_client)

    def established() -> bool:
        crd = extensions.read_custom_resource_definition("clusterkopfpeerings.kopf.dev")
        conditions = crd.status.conditions if crd.status is not None else None
        return any(c.type == "Established" and c.status == "True" for c in conditions or [])

    wait_until(established, 30, "peering CRD established")
    apply_manifests(api_client, [d for d in documents if d["kind"] != "CustomResourceDefinition"])
    if namespace is not None:
        peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": name}}
        try:
            client.CustomObjectsApi(api_client).create_namespaced_custom_object(
                "kopf.dev", "v1", namespace, "kopfpeerings", peering
            )
        except ApiException as error:
            if error.status != 409:
                raise


@dataclass
class OperatorProcess:
    """`kubetune operator` in a subprocess, with the fake workloads (or the real ones) and a fast poll
    interval."""

    kubeconfig: Path
    log_path: Path
    namespaces: list[str]
    launcher: str = "python"
    trainer_module: str = FAKE_TRAINER
    evaluator_module: str = FAKE_EVALUATOR
    trainer_image: str = CHECKOUT_IMAGE
    evaluator_image: str = CHECKOUT_IMAGE
    """The images of jobs without spec.image: the checkout's environment (the fast mode), where the fakes
    are; the demo and the deploy tests run the built images instead."""
    reconcile_interval: float = 1.0
    pending_timeout: float = 5.0
    restart_backoff: float = 1.0
    """The first gang restart's back-off (the operator's 10 s would slow every test that restarts a gang)."""
    policy: str = ""
    """KUBETUNE_POLICY JSON (controller/policies/platform.py); empty: everything allowed."""
    peering: str | None = None
    priority: int | None = None
    metrics_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-c",
            # `kubetune operator`, through the same entry point as the console script.
            "from kubetune_operator.cli import main; main()",
            "operator",
            "--launcher",
            self.launcher,
            "--trainer-image",
            self.trainer_image,
            "--evaluator-image",
            self.evaluator_image,
            "--trainer-module",
            self.trainer_module,
            "--evaluator-module",
            self.evaluator_module,
            "--reconcile-interval",
            str(self.reconcile_interval),
            "--pending-timeout",
            str(self.pending_timeout),
            "--restart-backoff",
            str(self.restart_backoff),
            "--metrics-port",
            str(self.metrics_port),
            "--health-port",
            str(self.health_port),
            "--policy",
            self.policy,
        ]
        for namespace in self.namespaces:
            argv += ["--namespace", namespace]
        if self.peering:
            argv += ["--peering", self.peering]
        if self.priority is not None:
            argv += ["--peering-priority", str(self.priority)]
        return argv

    def start(self) -> OperatorProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, like a crashed or OOM-killed operator pod."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def finetunejob(name: str, scenario: str = "{}", **spec: Any) -> dict[str, Any]:
    """A small FineTuneJob whose pods run the fake trainer with the given scenario JSON."""
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": "s3://models/base/"},
            "dataset": {"uri": "s3://data/train.jsonl"},
            "output": {"uri": f"s3://models/tuned/{name}/"},
            "resources": {"nodes": 1},
            "podTemplate": {"annotations": {"kubetune.io/fake-workload": scenario}},
        },
    }
    body["spec"].update(spec)
    return body


def evaljob(name: str, model: dict[str, Any], scenario: str = "{}") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EvalJob",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "dataset": {"uri": "s3://data/test.jsonl"},
            "metrics": ["rouge", "exact_match"],
            "output": {"uri": f"s3://evals/{name}/"},
            "podTemplate": {"annotations": {"kubetune.io/fake-workload": scenario}},
        },
    }


class Objects:
    """Typed shortcuts over the official client for the tests' reads and writes."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)

    def create(self, body: dict[str, Any]) -> None:
        plural = "finetunejobs" if body["kind"] == "FineTuneJob" else "evaljobs"
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, body)

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def status(self, plural: str, name: str) -> dict[str, Any]:
        return dict((self.get(plural, name) or {}).get("status") or {})

    def patch_spec(self, plural: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name, {"spec": spec}
        )

    def delete(self, plural: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)

    def jobs(self, name: str) -> list[Any]:
        selector = f"kubetune.io/job-name={name}"
        return list(self.batch.list_namespaced_job(self.namespace, label_selector=selector).items)

    def pods(self, name: str) -> list[Any]:
        selector = f"kubetune.io/job-name={name}"
        return list(self.core.list_namespaced_pod(self.namespace, label_selector=selector).items)

    def events(self, name: str) -> list[Any]:
        selector = f"involvedObject.name={name}"
        return list(self.core.list_namespaced_event(self.namespace, field_selector=selector).items)
