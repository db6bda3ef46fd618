"""The agent's only contact with the API server: a pod informer thread and object reads.

Objects are kept as plain dicts in their wire (camelCase) shape: the pure modules work on that
shape, and skipping the client's model classes keeps ~1,000 pods cheap to decode.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch import watch as watch_module

log = logging.getLogger(__name__)

HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409
HTTP_GONE = 410
WATCH_SECONDS = 240


@dataclass(frozen=True)
class PodEvent:
    """ADDED/MODIFIED/DELETED of one pod, or RESYNC with the full list after a (re)list."""

    kind: str
    pod: dict[str, Any] | None = None
    pods: list[dict[str, Any]] | None = None


class Kube:
    """API clients built from one kubeconfig."""

    def __init__(self, kubeconfig: str) -> None:
        api_client = config.new_client_from_config(config_file=kubeconfig)
        # Typed as Any on purpose: the agent passes and receives wire-shaped dicts (`_preload_content`),
        # which the client's stubs, written for its model classes, do not describe.
        self.core: Any = client.CoreV1Api(api_client)
        self.coordination: Any = client.CoordinationV1Api(api_client)
        server = urlparse(str(api_client.configuration.host))  # type: ignore[attr-defined]
        self.server_host = server.hostname or "127.0.0.1"
        self.server_port = server.port or 443

    # --- ObjectSource / VolumeSource -------------------------------------------------------------
    def config_map(self, namespace: str, name: str) -> dict[str, bytes] | None:
        body = self._read(self.core.read_namespaced_config_map, namespace, name)
        if body is None:
            return None
        data = {key: value.encode() for key, value in (body.get("data") or {}).items()}
        data.update({key: base64.b64decode(value) for key, value in (body.get("binaryData") or {}).items()})
        return data

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        body = self._read(self.core.read_namespaced_secret, namespace, name)
        if body is None:
            return None
        return {key: base64.b64decode(value) for key, value in (body.get("data") or {}).items()}

    def service_account_token(
        self, pod: Mapping[str, Any], audience: str | None, expiration_seconds: int
    ) -> str | None:
        metadata = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        request: dict[str, Any] = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [audience] if audience else None,
                "expirationSeconds": max(expiration_seconds, 600),
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                },
            },
        }
        try:
            answer = self.core.create_namespaced_service_account_token(
                account, metadata["namespace"], request, _preload_content=False
            )
        except ApiException as error:
            log.warning("token request for %s/%s failed: %s", metadata["namespace"], account, error.reason)
            return None
        token: str = json.loads(answer.data)["status"]["token"]
        return token

    @staticmethod
    def _read(reader: Any, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            response = reader(name, namespace, _preload_content=False)
        except ApiException as error:
            if error.status == HTTP_NOT_FOUND:
                return None
            raise
        body: dict[str, Any] = json.loads(response.data)
        return body

    # --- nodes ----------------------------------------------------------------------------------
    def create_node(self, node: dict[str, Any]) -> None:
        """Register a node; one that already exists (an earlier agent's) is kept."""
        try:
            self.core.create_node(node, _preload_content=False)
        except ApiException as error:
            if error.status != HTTP_CONFLICT:
                raise

    def node_names(self, label_selector: str) -> list[str]:
        response = self.core.list_node(label_selector=label_selector, _preload_content=False)
        return [item["metadata"]["name"] for item in json.loads(response.data)["items"]]

    def delete_node(self, name: str) -> None:
        try:
            self.core.delete_node(name, _preload_content=False)
        except ApiException as error:
            if error.status != HTTP_NOT_FOUND:
                raise

    def patch_node_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        response = self.core.patch_node_status(name, {"status": status}, _preload_content=False)
        node: dict[str, Any] = json.loads(response.data)
        return node

    def annotate_node(self, name: str, annotations: dict[str, str]) -> None:
        self.core.patch_node(name, {"metadata": {"annotations": annotations}}, _preload_content=False)

    def set_node_taints(self, name: str, taints: list[dict[str, Any]]) -> None:
        self.core.patch_node(name, {"spec": {"taints": taints}}, _preload_content=False)

    def renew_lease(self, lease: dict[str, Any]) -> None:
        metadata = lease["metadata"]
        try:
            self.coordination.patch_namespaced_lease(
                metadata["name"], metadata["namespace"], {"spec": lease["spec"]}, _preload_content=False
            )
        except ApiException as error:
            if error.status != HTTP_NOT_FOUND:
                raise
            self.coordination.create_namespaced_lease(metadata["namespace"], lease, _preload_content=False)

    def post_event(self, event: dict[str, Any]) -> None:
        """Best effort, as the kubelet's recorder: a lost Event must never stop a pod."""
        try:
            self.core.create_namespaced_event(event["metadata"]["namespace"], event, _preload_content=False)
        except Exception as error:
            log.debug("event %s not posted: %s", event["reason"], error)

    # --- pods ----------------------------------------------------------------------------------
    def patch_pod_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.core.patch_namespaced_pod_status(name, namespace, {"status": status}, _preload_content=False)

    def confirm_pod_deletion(self, namespace: str, name: str, uid: str) -> None:
        """What the kubelet does once a pod's containers are gone: delete it now, if it is still that pod."""
        body = client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid))
        try:
            self.core.delete_namespaced_pod(
                name, namespace, body=body, grace_period_seconds=0, _preload_content=False
            )
        except ApiException as error:
            if error.status not in (HTTP_NOT_FOUND, HTTP_CONFLICT):
                raise


class PodInformer(threading.Thread):
    """List, then watch, every pod; events go to `events`. A lost watch relists (RESYNC)."""

    def __init__(self, kube: Kube, events: queue.Queue[PodEvent]) -> None:
        super().__init__(name="pod-informer", daemon=True)
        self._kube = kube
        self._events = events
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                version = self._relist()
                self._watch(version)
            except Exception as error:  # the informer must outlive API hiccups and restarts
                log.warning("pod watch interrupted (%s); relisting", error)
                self._stopped.wait(1.0)

    def _relist(self) -> str:
        response = self._kube.core.list_pod_for_all_namespaces(_preload_content=False)
        body = json.loads(response.data)
        self._events.put(PodEvent("RESYNC", pods=body.get("items") or []))
        version: str = body["metadata"]["resourceVersion"]
        return version

    def _watch(self, version: str) -> None:
        while not self._stopped.is_set():
            response = self._kube.core.list_pod_for_all_namespaces(
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_SECONDS,
                # The server ends the watch after WATCH_SECONDS; a connection that died silently must
                # not hang the informer for ever.
                _request_timeout=(10, WATCH_SECONDS + 30),
                _preload_content=False,
            )
            try:
                for line in watch_module.iter_resp_lines(response):  # type: ignore[attr-defined]
                    if not line:
                        continue
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        if obj.get("code") == HTTP_GONE:
                            return  # too old: relist
                        raise RuntimeError(f"watch error: {obj.get('message')}")
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self._events.put(PodEvent(event["type"], pod=obj))
                    if self._stopped.is_set():
                        return
            finally:
                response.close()
                response.release_conn()
