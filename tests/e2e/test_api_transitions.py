"""The CEL transition rules of the CRDs, checked by the real API server: what may change after creation."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from kubetune_devtools.devstack.kube_clients import KubeClients

pytestmark = pytest.mark.e2e
GROUP, VERSION = "kubetune.io", "v1alpha1"


def finetunejob(name: str) -> dict[str, Any]:
    # No runPolicy at all: users may add one later to suspend the job.
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": "s3://models/base/"},
            "dataset": {"uri": "s3://data/train.jsonl"},
            "output": {"uri": "s3://models/tuned/x/"},
        },
    }


def patch(k8s: KubeClients, namespace: str, plural: str, name: str, body: dict[str, Any]) -> None:
    k8s.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, body)


def rejected(k8s: KubeClients, namespace: str, plural: str, name: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as raised:
        patch(k8s, namespace, plural, name, body)
    assert raised.value.status == 422
    return str(raised.value.body)


def test_only_suspend_deadline_and_ttl_change_after_creation(k8s: KubeClients, namespace: str) -> None:
    k8s.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "finetunejobs", finetunejob("j"))

    patch(k8s, namespace, "finetunejobs", "j", {"spec": {"runPolicy": {"suspend": True}}})
    patch(k8s, namespace, "finetunejobs", "j", {"spec": {"runPolicy": {"activeDeadlineSeconds": 600}}})
    patch(k8s, namespace, "finetunejobs", "j", {"spec": {"runPolicy": {"ttlSecondsAfterFinished": 60}}})
    stored = k8s.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "finetunejobs", "j")
    assert stored["spec"]["runPolicy"] == {
        "suspend": True,
        "activeDeadlineSeconds": 600,
        "ttlSecondsAfterFinished": 60,
    }

    body = rejected(k8s, namespace, "finetunejobs", "j", {"spec": {"runPolicy": {"maxRestarts": 9}}})
    assert "spec.runPolicy.maxRestarts is immutable" in body
    body = rejected(k8s, namespace, "finetunejobs", "j", {"spec": {"model": {"uri": "s3://models/other/"}}})
    assert "spec.model is immutable" in body
    body = rejected(k8s, namespace, "finetunejobs", "j", {"spec": {"method": "full"}})
    assert "spec.method is immutable" in body


def test_evaljob_without_metrics_uses_the_defaults(k8s: KubeClients, namespace: str) -> None:
    evaljob = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EvalJob",
        "metadata": {"name": "e"},
        "spec": {
            "model": {"uri": "s3://models/tuned/x/"},
            "dataset": {"uri": "s3://data/test.jsonl"},
            "output": {"uri": "s3://evals/x/"},
        },
    }
    created = k8s.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "evaljobs", evaljob)
    assert "metrics" not in created["spec"]
    body = rejected(k8s, namespace, "evaljobs", "e", {"spec": {"metrics": ["rouge"]}})
    assert "spec.metrics is immutable" in body
