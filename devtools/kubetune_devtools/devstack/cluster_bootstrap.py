"""What a fresh cluster needs once its API server answers: Prometheus' RBAC, the project's CRDs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

FIELD_MANAGER = "kubetune-dev"
PROMETHEUS_USER = "kubetune:prometheus"


def prometheus_rbac() -> list[dict[str, Any]]:
    """Least privilege for pod discovery: list/watch pods cluster-wide, nothing else."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "kubetune-prometheus"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "kubetune-prometheus"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "kubetune-prometheus",
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": PROMETHEUS_USER}],
    }
    return [role, binding]


def load_crd_documents(crds_dir: Path) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(crds_dir.glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


APPLY_PATCH = "application/apply-patch+yaml"


def server_side_apply(api_client: Any, document: dict[str, Any]) -> None:
    """Server-side apply of one of the cluster-scoped kinds the stack bootstraps.

    Typed clients rather than the dynamic one: its discovery of every API group costs ~4 s, paid by
    every `dev up` and so by every test session.
    """
    # deferred: the Kubernetes client costs ~0.7 s that `kubetune dev status|env|down` skip
    from kubernetes import client  # noqa: PLC0415

    name, kind = document["metadata"]["name"], document["kind"]
    # _preload_content=False: nothing reads the answer, and deserialising a CRD into models costs seconds.
    options: dict[str, Any] = {
        "field_manager": FIELD_MANAGER,
        "force": True,
        "_content_type": APPLY_PATCH,
        "_preload_content": False,
    }
    if kind == "CustomResourceDefinition":
        client.ApiextensionsV1Api(api_client).patch_custom_resource_definition(name, document, **options)
    elif kind == "ClusterRole":
        client.RbacAuthorizationV1Api(api_client).patch_cluster_role(name, document, **options)
    elif kind == "ClusterRoleBinding":
        client.RbacAuthorizationV1Api(api_client).patch_cluster_role_binding(name, document, **options)
    else:
        raise ValueError(
            f"{kind}/{name}: the stack only bootstraps CRDs, ClusterRoles and ClusterRoleBindings"
        )


def bootstrap_cluster(kubeconfig: Path, crds_dir: Path | None) -> list[str]:
    """Apply Prometheus' RBAC and every CRD in `crds_dir`; returns a line per applied object."""
    # deferred: the Kubernetes client costs ~0.7 s that `kubetune dev status|env|down` skip
    from kubetune_devtools.devstack.kube_clients import kube_clients  # noqa: PLC0415

    applied: list[str] = []
    documents = prometheus_rbac()
    if crds_dir is not None and crds_dir.is_dir():
        documents += load_crd_documents(crds_dir)
    with kube_clients(kubeconfig) as clients:
        for document in documents:
            server_side_apply(clients.api_client, document)
            applied.append(f"{document['kind']}/{document['metadata']['name']}")
    return applied
