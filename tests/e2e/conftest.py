"""Fixtures for tests against the local stack (real kube-apiserver, controller-manager, scheduler, node
agent, MinIO, Prometheus).

Lifetime: the session-scoped `stack` calls the same idempotent code as `kubetune dev up`, so it reuses a
stack that is already up and starts (building missing binaries first) whatever is not. The stack is LEFT
RUNNING after the session, like a developer's cluster: the next run starts in about a second, and
several pytest sessions can share it. `kubetune dev down` stops it; set KUBETUNE_DEV_STOP_AFTER_TESTS=1
to stop it at the end of a session that started it (CI machines that are not thrown away).

Fixture names are a contract with the other e2e tests: `stack`, `k8s`, `namespace`, `s3`, `wait_for`,
`real_operator`, `s3_secret`; for the node agent's tests `core`, `batch`, `agent_dir` and
`node_agent_is_this_checkout`.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetune_devtools.devstack.binaries import BinaryError, ensure_binaries
from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.node_agent.version import CODE_ANNOTATION, code_fingerprint
from kubetune_devtools.devstack.probes import wait_for as _wait_for
from kubetune_devtools.devstack.s3 import ensure_bucket, s3_client
from kubetune_devtools.devstack.stack import LocalStack, down, is_up, up
from kubetune_devtools.testing.operator_harness import OperatorProcess, built_workload_images

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

WaitFor = Callable[..., Any]
STOP_AFTER_TESTS_ENV = "KUBETUNE_DEV_STOP_AFTER_TESTS"


def _selects_e2e(items: list[pytest.Item]) -> bool:
    return any(item.get_closest_marker("e2e") is not None for item in items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build missing binaries before any test runs: a cold build takes ~15 min, far beyond a test's
    timeout, and must not be charged to whichever test happens to request `stack` first."""
    if _selects_e2e(session.items) and not session.config.option.collectonly:
        try:
            ensure_binaries()
        except BinaryError as error:
            pytest.exit(f"cannot build the local stack's binaries: {error}", returncode=3)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """The running local stack (see the module docstring for its lifetime)."""
    was_up = is_up()
    running = up(report=lambda line: print(f"[dev up] {line}"))
    yield running
    if not was_up and os.environ.get(STOP_AFTER_TESTS_ENV) == "1":
        down(report=lambda line: print(f"[dev down] {line}"))


@pytest.fixture(scope="session")
def k8s(stack: LocalStack) -> Iterator[KubeClients]:
    """A `KubeClients` bundle (admin credentials): `.api_client`, `.core` (CoreV1Api), `.batch`
    (BatchV1Api), `.custom` (CustomObjectsApi), `.apiextensions` (ApiextensionsV1Api)."""
    clients = KubeClients.from_kubeconfig(stack.kubeconfig)
    yield clients
    clients.close()


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")
    # DNS-1123 label: at most 63 characters; the random suffix keeps reruns and parallel sessions apart.
    return f"t-{slug[:48].rstrip('-')}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(k8s: KubeClients, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting: the namespace controller
    and the node agent finish the cleanup in the background).

    PodSecurity `baseline` is enforced (and `restricted` warned about), as on a typical shared cluster.
    """
    name = _namespace_name(request.node.name)
    labels = {
        "kubetune.io/e2e": "true",
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    k8s.core.create_namespace({"metadata": {"name": name, "labels": labels}})
    yield name
    _release_kubetune_finalizers(k8s, name)
    k8s.core.delete_namespace(name, propagation_policy="Background")


def _release_kubetune_finalizers(k8s: KubeClients, namespace: str) -> None:
    """A test's operator is often gone before its namespace is deleted; the operator's finalizers would
    then keep the namespace Terminating for ever in the long-lived dev stack. Each job is deleted first:
    once it is being deleted no finalizer can be added back (a still-running operator would re-add one
    to a live object), so removing ours lets it go."""
    group, version = "kubetune.io", "v1alpha1"
    for plural in ("finetunejobs", "evaljobs"):
        listed = k8s.custom.list_namespaced_custom_object(group, version, namespace, plural)
        for item in listed["items"]:
            name = item["metadata"]["name"]
            try:
                k8s.custom.delete_namespaced_custom_object(group, version, namespace, plural, name)
                k8s.custom.patch_namespaced_custom_object(
                    group, version, namespace, plural, name, {"metadata": {"finalizers": None}}
                )
            except ApiException as error:
                if error.status != 404:  # already gone
                    raise


@pytest.fixture(scope="session")
def s3(stack: LocalStack) -> S3Client:
    """A boto3 S3 client for the stack's MinIO (path-style addressing)."""
    return s3_client(stack.s3_endpoint_url, stack.s3_credentials)


@pytest.fixture
def s3_prefix(
    stack: LocalStack, s3: S3Client, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    """A fresh prefix `s3://<the requesting module's BUCKET>/<random>/`, the bucket created if missing; the
    AWS_* variables of this process set as a pod's credentialsSecret sets them, the metrics port off (for
    tests that run the trainer or evaluator in-process)."""
    bucket = request.module.BUCKET
    ensure_bucket(s3, bucket)
    for key, value in stack.env().items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "off")
    return f"s3://{bucket}/{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def real_operator(
    stack: LocalStack, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    """A `kubetune operator` process whose pods run the REAL trainer and evaluator (no fakes) inside the
    project's images (built first, cached layers), watching the namespaces of the requesting module's
    tests: the module's NAMESPACE_GLOB (`namespace` names each test's namespace after the test). The tail of
    its log is printed afterwards, for a failure's report."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(
        stack.kubeconfig,
        log,
        namespaces=[request.module.NAMESPACE_GLOB],
        trainer_module="kubetune_trainer",
        evaluator_module="kubetune_evaluator",
        pending_timeout=120,
        **built_workload_images(),
    ).start()
    yield process
    process.stop()
    print(process.log_tail(80))


@pytest.fixture
def s3_secret(k8s: KubeClients, namespace: str, stack: LocalStack) -> str:
    """The Secret `s3-creds` in the test's namespace with the stack's MinIO keys, for a job's
    storage.credentialsSecret; returns its name."""
    core: Any = k8s.core  # Any: the stubs want a V1Secret where the client takes a plain dict
    core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "s3-creds"},
            "stringData": {
                "AWS_ACCESS_KEY_ID": stack.s3_access_key_id,
                "AWS_SECRET_ACCESS_KEY": stack.s3_secret_access_key,
            },
        },
    )
    return "s3-creds"


@pytest.fixture
def core(k8s: KubeClients) -> client.CoreV1Api:
    api: client.CoreV1Api = k8s.core
    return api


@pytest.fixture
def batch(k8s: KubeClients) -> client.BatchV1Api:
    api: client.BatchV1Api = k8s.batch
    return api


@pytest.fixture
def agent_dir(stack: LocalStack) -> Path:
    """The node agent's --state-dir, as `kubetune dev up` starts it."""
    return Path(stack.state_dir) / "node-agent"


@pytest.fixture(scope="module")
def node_agent_is_this_checkout(k8s: KubeClients) -> None:
    """Fail clearly, not mysteriously, when the stack still runs a node agent started from older code."""
    node = k8s.core.read_node("kt-node-0")
    running = (node.metadata.annotations or {}).get(CODE_ANNOTATION)
    if running != code_fingerprint():
        pytest.fail(
            f"the stack's node agent runs other code ({running}) than this checkout ({code_fingerprint()}): "
            "restart it with `kubetune dev down node-agent && kubetune dev up`"
        )


@pytest.fixture
def wait_for() -> WaitFor:
    """`wait_for(predicate, timeout, message)`: poll until the predicate returns something truthy and
    return it; on timeout fail with the message plus the last value or exception."""
    return _wait_for
