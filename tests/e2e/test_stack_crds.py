"""The CRDs from crds/ apply server-side; the API server accepts every example and rejects every
invalid one (OpenAPI schema or CEL rules), as `kubectl apply --dry-run=server` would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from kubetune_devtools.devstack.cluster_bootstrap import load_crd_documents, server_side_apply
from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.probes import wait_for

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
INVALID_EXAMPLES = sorted((REPO / "examples" / "invalid").glob("*.yaml"))


def plurals() -> dict[str, str]:
    return {
        doc["spec"]["names"]["kind"]: doc["spec"]["names"]["plural"]
        for doc in load_crd_documents(REPO / "crds")
    }


def dry_run_create(k8s: KubeClients, namespace: str, document: dict[str, Any]) -> None:
    group, version = document["apiVersion"].split("/")
    body = {**document, "metadata": {**document["metadata"], "namespace": namespace}}
    k8s.custom.create_namespaced_custom_object(
        group, version, namespace, plurals()[document["kind"]], body, dry_run="All"
    )


def test_crds_apply_server_side_and_become_established(k8s: KubeClients) -> None:
    documents = load_crd_documents(REPO / "crds")
    assert {doc["spec"]["names"]["kind"] for doc in documents} == {"FineTuneJob", "EvalJob"}
    for document in documents:
        # Applying again is a no-op, not a conflict: the stack applied them with the same field manager.
        server_side_apply(k8s.api_client, document)

        def established(name: str = document["metadata"]["name"]) -> bool:
            crd = k8s.apiextensions.read_custom_resource_definition(name)
            conditions = (crd.status.conditions if crd.status else None) or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        wait_for(established, 30, f"CRD {document['metadata']['name']} to be Established")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_accepted_by_the_api_server(path: Path, k8s: KubeClients, namespace: str) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        if document:
            dry_run_create(k8s, namespace, document)


@pytest.mark.parametrize("path", INVALID_EXAMPLES, ids=[p.name for p in INVALID_EXAMPLES])
def test_invalid_example_is_rejected_by_the_api_server(path: Path, k8s: KubeClients, namespace: str) -> None:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert documents, f"{path} holds no manifest"
    try:
        for document in documents:
            dry_run_create(k8s, namespace, document)
    except ApiException as rejected:
        # 422 Unprocessable Entity: schema or CEL validation, not an authorization or routing error.
        assert rejected.status == 422, rejected.body
        # ...for the documented reason: the field named on the first comment line is in the causes.
        field = re.search(r"\(((?:spec|metadata)[^ )]*)", path.read_text().splitlines()[0])
        assert field is not None, f"{path.name}: first comment line must name the rejected field"
        assert field.group(1) in str(rejected.body), rejected.body
    else:
        reason = path.read_text().splitlines()[0]
        pytest.fail(f"the API server accepted {path.name}; the CRD lacks the rule it documents: {reason}")
