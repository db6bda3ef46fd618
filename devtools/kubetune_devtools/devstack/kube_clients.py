"""Kubernetes API clients built from one kubeconfig (what the `k8s` test fixture hands out)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config


@dataclass(frozen=True)
class KubeClients:
    """The typed API groups tests and tools need, sharing one connection pool."""

    api_client: client.ApiClient
    core: client.CoreV1Api
    batch: client.BatchV1Api
    custom: client.CustomObjectsApi
    apiextensions: client.ApiextensionsV1Api

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path) -> KubeClients:
        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        return cls(
            api_client=api_client,
            core=client.CoreV1Api(api_client),
            batch=client.BatchV1Api(api_client),
            custom=client.CustomObjectsApi(api_client),
            apiextensions=client.ApiextensionsV1Api(api_client),
        )

    def close(self) -> None:
        # ApiClient.close() exists at run time (it stops the thread pool) but the stubs omit it.
        self.api_client.close()  # type: ignore[attr-defined]


@contextmanager
def kube_clients(kubeconfig: Path) -> Iterator[KubeClients]:
    clients = KubeClients.from_kubeconfig(kubeconfig)
    try:
        yield clients
    finally:
        clients.close()
