"""The only module that talks to the Kubernetes API: a thin, dict-in dict-out layer.

Requests go through the official client's ApiClient (auth, TLS, kubeconfig) but skip its model
(de)serialisation: the builders already produce plain dicts and deserialising every Job and Pod into
generated classes costs more CPU than the rest of a reconcile (measured with bench/operator_scale.py).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubetune_operator.api import GROUP, VERSION

PLURALS = {"FineTuneJob": "finetunejobs", "EvalJob": "evaljobs"}
CORE_PATHS = {"ConfigMap": "/api/v1", "Service": "/api/v1", "Pod": "/api/v1", "Secret": "/api/v1"}
RESOURCE_NAMES = {
    "ConfigMap": "configmaps",
    "Service": "services",
    "Pod": "pods",
    "Secret": "secrets",
    "Job": "jobs",
}


class KubeError(RuntimeError):
    """An API error other than the expected 404/409; carries the HTTP status and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def load_client_config() -> client.ApiClient:
    """In-cluster service account when running in a pod, the kubeconfig otherwise."""
    # Typed as Any: the installed stubs describe an older client (no param_serialize, pool size).
    configuration: Any = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    # One connection per handler thread; the default (5 x CPUs) throttles bursts of creations.
    configuration.connection_pool_maxsize = 64
    return client.ApiClient(configuration)


def collection_path(kind: str, namespace: str) -> str:
    if kind in PLURALS:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURALS[kind]}"
    if kind == "Job":
        return f"/apis/batch/v1/namespaces/{namespace}/jobs"
    if kind == "NetworkPolicy":
        return f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"
    return f"{CORE_PATHS[kind]}/namespaces/{namespace}/{RESOURCE_NAMES[kind]}"


def object_path(kind: str, namespace: str, name: str) -> str:
    return f"{collection_path(kind, namespace)}/{quote(name)}"


class Kube:
    """Create-if-absent, list by label, merge-patch, delete with propagation; 404/409 are answers."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._client: Any = api_client

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        query: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        request = self._client.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={
                "Accept": "application/json",
                "Content-Type": "application/json",
                **(headers or {}),
            },
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._client.call_api(*request, _request_timeout=30)
            response.read()
        except ApiException as error:
            return int(error.status or 0), _decode(error.body)
        return int(response.status), _decode(response.data)

    def _checked(self, status: int, payload: dict[str, Any], *allowed: int) -> None:
        if 200 <= status < 300 or status in allowed:
            return
        raise KubeError(status, str(payload.get("message") or payload))

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        status, payload = self._request("GET", object_path(kind, namespace, name))
        self._checked(status, payload, 404)
        return None if status == 404 else payload

    def exists_metadata_only(self, kind: str, namespace: str, name: str) -> bool | None:
        """Existence check that receives only metadata (for Secrets: never their values).

        None when the operator may not look (403: RBAC without `get secrets`): the caller decides."""
        accept = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
        status, payload = self._request("GET", object_path(kind, namespace, name), headers={"Accept": accept})
        if status == 403:
            return None
        self._checked(status, payload, 404)
        return status != 404

    def create(self, body: dict[str, Any]) -> bool:
        """True when created, False when it already existed (a handler that ran twice)."""
        metadata = body["metadata"]
        status, payload = self._request(
            "POST", collection_path(body["kind"], metadata["namespace"]), body=body
        )
        self._checked(status, payload, 409)
        return status != 409

    def events_about(self, namespace: str, uid: str) -> list[dict[str, Any]]:
        """core/v1 Events about one object (by UID); [] when RBAC lets the operator not list them."""
        status, payload = self._request(
            "GET",
            f"/api/v1/namespaces/{namespace}/events",
            query=[("fieldSelector", f"involvedObject.uid={uid}")],
        )
        if status == 403:
            return []
        self._checked(status, payload)
        return list(payload.get("items") or [])

    def list(self, kind: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        status, payload = self._request(
            "GET", collection_path(kind, namespace), query=[("labelSelector", label_selector)]
        )
        self._checked(status, payload)
        return list(payload.get("items") or [])

    def merge_patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        status, payload = self._request(
            "PATCH",
            object_path(kind, namespace, name),
            body=patch,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        self._checked(status, payload, 404)

    def delete(
        self, kind: str, namespace: str, name: str, propagation: str = "Background", uid: str | None = None
    ) -> bool:
        """True when a deletion was requested, False when it was already gone.

        With `uid`, only that incarnation is deleted (a precondition): an object re-created under the same
        name in the meantime is left alone (409, also answered False)."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        status, payload = self._request("DELETE", object_path(kind, namespace, name), body=body)
        self._checked(status, payload, 404, *((409,) if uid is not None else ()))
        return status not in (404, 409)


def _decode(data: bytes | str | None) -> dict[str, Any]:
    if not data:
        return {}
    try:
        decoded = json.loads(data)
    except ValueError:
        return {"message": data.decode(errors="replace") if isinstance(data, bytes) else data}
    return decoded if isinstance(decoded, dict) else {"items": decoded}
