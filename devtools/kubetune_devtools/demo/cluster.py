"""The demo's Kubernetes side: the operator installed with the Helm chart, namespaces, the S3 Secret, and the
two jobs applied server-side (as `kubectl apply --server-side` does)."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from kubetune_devtools.demo.plan import SECRET_NAME, DemoPlan
from kubetune_devtools.devstack.binaries import REPO_ROOT, BinaryError, build_images, client_tool
from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.stack import LocalStack

CHART = REPO_ROOT / "charts" / "kubetune"
GROUP, VERSION = "kubetune.io", "v1alpha1"
FIELD_MANAGER = "kubetune-demo"


class DemoClusterError(RuntimeError):
    """A cluster step failed (the message carries the tool's output)."""


def helm_binary() -> str:
    """The project's pinned Helm (hack/tools/helm), built on first use; never the one on PATH."""
    try:
        return str(client_tool("helm"))
    except BinaryError as error:
        raise DemoClusterError(str(error)) from error


def ensure_images() -> tuple[str, ...]:
    """The operator, trainer and evaluator images in the local image store (built, or cached layers)."""
    try:
        return build_images()
    except BinaryError as error:
        raise DemoClusterError(str(error)) from error


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def helm_values(plan: DemoPlan) -> dict[str, Any]:
    """Namespaced release watching only the demo namespace; one replica (the node agent runs every pod in
    one network namespace, so two replicas would collide on their ports — docs/node-agent.md)."""
    return {
        "watchNamespaces": [plan.namespace],
        "operator": {
            "replicas": 1,
            "metricsPort": _free_port(),
            "healthPort": _free_port(),
            # Fresher progress in `kubectl get ftj` than the 10 s default; cheap on a small cluster.
            "reconcileInterval": 2,
        },
    }


def ensure_namespace(k8s: KubeClients, name: str) -> None:
    try:
        core: Any = k8s.core  # Any: the stubs want model objects where the client accepts plain dicts
        core.create_namespace({"metadata": {"name": name, "labels": {"kubetune.io/demo": "true"}}})
    except ApiException as error:
        if error.status != 409:
            raise


def install_operator(stack: LocalStack, plan: DemoPlan) -> str:
    """`helm upgrade --install --wait`: idempotent, so a second demo run reuses the release."""
    with tempfile.TemporaryDirectory() as tmp:
        values = Path(tmp) / "values.yaml"
        values.write_text(yaml.safe_dump(helm_values(plan)))
        argv = [
            helm_binary(),
            "--kubeconfig",
            str(stack.kubeconfig),
            "upgrade",
            "--install",
            plan.release,
            str(CHART),
            "-n",
            plan.system_namespace,
            "-f",
            str(values),
            "--wait",
            "--timeout",
            "180s",
        ]
        result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise DemoClusterError(f"helm install failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return f"helm upgrade --install {plan.release} charts/kubetune -n {plan.system_namespace} -f values.yaml"


def uninstall_operator(stack: LocalStack, plan: DemoPlan) -> None:
    helm = [helm_binary(), "--kubeconfig", str(stack.kubeconfig)]
    subprocess.run(
        [*helm, "uninstall", plan.release, "-n", plan.system_namespace, "--wait"],
        check=False,
        capture_output=True,
        timeout=180,
    )


def apply_secret(k8s: KubeClients, stack: LocalStack, plan: DemoPlan) -> None:
    """The S3 credentials the pods get as secretKeyRefs (the operator never copies them)."""
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_NAME, "namespace": plan.namespace},
        "stringData": {
            "AWS_ACCESS_KEY_ID": stack.s3_access_key_id,
            "AWS_SECRET_ACCESS_KEY": stack.s3_secret_access_key,
        },
    }
    # Any: the installed client accepts `_content_type` (server-side apply); its stubs do not know it.
    core: Any = k8s.core
    core.patch_namespaced_secret(
        SECRET_NAME, plan.namespace, body, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY
    )


APPLY = "application/apply-patch+yaml"


def _plural(manifest: dict[str, Any]) -> str:
    return "finetunejobs" if manifest["kind"] == "FineTuneJob" else "evaljobs"


def delete_job(k8s: KubeClients, manifest: dict[str, Any], timeout: float = 120) -> None:
    """Delete a previous run's job of the same name and wait until it is gone (its pods with it)."""
    name, namespace, plural = (
        manifest["metadata"]["name"],
        manifest["metadata"]["namespace"],
        _plural(manifest),
    )
    try:
        k8s.custom.delete_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name, propagation_policy="Foreground"
        )
    except ApiException as error:
        if error.status == 404:
            return
        raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            k8s.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except ApiException as error:
            if error.status == 404:
                return
            raise
        time.sleep(1)
    raise DemoClusterError(f"{manifest['kind']} {name} from an earlier run was not deleted in {timeout:.0f}s")


def server_side_apply(k8s: KubeClients, manifest: dict[str, Any]) -> None:
    """What `kubectl apply --server-side -f job.yaml` sends."""
    metadata = manifest["metadata"]
    custom: Any = k8s.custom  # Any: see apply_secret
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        metadata["namespace"],
        _plural(manifest),
        metadata["name"],
        manifest,
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type=APPLY,
    )


def job_status(k8s: KubeClients, manifest: dict[str, Any]) -> dict[str, Any]:
    metadata = manifest["metadata"]
    body = k8s.custom.get_namespaced_custom_object(
        GROUP, VERSION, metadata["namespace"], _plural(manifest), metadata["name"]
    )
    status: dict[str, Any] = body.get("status") or {}
    return status


def delete_namespace(k8s: KubeClients, name: str) -> None:
    try:
        k8s.core.delete_namespace(name, propagation_policy="Background")
    except ApiException as error:
        if error.status != 404:
            raise
