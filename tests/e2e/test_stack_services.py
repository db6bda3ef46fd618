"""The local stack behaves like a real cluster and real services: S3 through MinIO, Prometheus
discovering and scraping a pod through the API server, PodSecurity admission, ServiceAccount tokens."""

from __future__ import annotations

import json
import secrets
import sys
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.probes import wait_for
from kubetune_devtools.devstack.s3 import ensure_bucket
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import CHECKOUT_IMAGE

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.e2e

METRICS_SERVER = """
import os, time
from prometheus_client import Gauge, start_http_server
Gauge(os.environ["METRIC"], "kubetune stack e2e probe").set(42)
start_http_server(int(os.environ["PORT"]), addr=os.environ["POD_IP"])
time.sleep(3600)
"""


def test_s3_round_trip_through_minio(s3: S3Client) -> None:
    bucket, key = "kubetune-e2e", f"round-trip/{secrets.token_hex(4)}.jsonl"
    ensure_bucket(s3, bucket)
    ensure_bucket(s3, bucket)  # idempotent
    body = b'{"prompt": "Rate this review: great", "completion": " 5"}\n'
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="round-trip/")
    assert key in [entry.get("Key") for entry in listed.get("Contents", [])]
    s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key=key)


def prometheus_query(stack: LocalStack, promql: str) -> list[dict[str, Any]]:
    url = f"{stack.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        payload = json.load(response)
    assert payload["status"] == "success", payload
    result: list[dict[str, Any]] = payload["data"]["result"]
    return result


def test_prometheus_scrapes_an_annotated_pod_found_through_the_api_server(
    stack: LocalStack, k8s: KubeClients, namespace: str
) -> None:
    metric, port = f"kubetune_stack_probe_{secrets.token_hex(4)}", "9464"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "metrics",
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": port,
                "prometheus.io/path": "/",
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "server",
                    "image": CHECKOUT_IMAGE,
                    "command": [sys.executable, "-c", METRICS_SERVER],
                    "env": [
                        {"name": "METRIC", "value": metric},
                        {"name": "PORT", "value": port},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    ],
                }
            ],
        },
    }
    k8s.core.create_namespaced_pod(namespace, pod)

    def running_ip() -> str | None:
        status = k8s.core.read_namespaced_pod("metrics", namespace).status
        return status.pod_ip if status is not None and status.phase == "Running" else None

    pod_ip = wait_for(running_ip, 60, "the metrics pod to run (node agent)")
    samples = wait_for(lambda: prometheus_query(stack, metric), 60, f"Prometheus to scrape {metric}")
    assert len(samples) == 1
    labels, value = samples[0]["metric"], samples[0]["value"][1]
    assert float(value) == 42
    # These labels only exist if the target came from Kubernetes pod discovery.
    assert labels["pod"] == "metrics"
    assert labels["namespace"] == namespace
    assert labels["instance"] == f"{pod_ip}:{port}"


def test_pod_security_admission_rejects_a_privileged_pod(k8s: KubeClients, namespace: str) -> None:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="privileged"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="c", image="busybox", security_context=client.V1SecurityContext(privileged=True)
                )
            ]
        ),
    )
    with pytest.raises(ApiException) as rejected:
        k8s.core.create_namespaced_pod(namespace, pod)
    assert rejected.value.status == 403
    assert "violates PodSecurity" in rejected.value.body


def test_service_account_tokens_are_issued_and_accepted(
    stack: LocalStack, k8s: KubeClients, namespace: str
) -> None:
    # The token controller and the root-CA publisher run in the controller-manager.
    wait_for(
        lambda: k8s.core.read_namespaced_service_account("default", namespace),
        30,
        "the default ServiceAccount",
    )
    wait_for(
        lambda: k8s.core.read_namespaced_config_map("kube-root-ca.crt", namespace).data,
        30,
        "kube-root-ca.crt in the namespace",
    )
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    )
    token = k8s.core.create_namespaced_service_account_token("default", namespace, request).status.token
    configuration = client.Configuration()
    configuration.host = stack.api_server_url
    configuration.ssl_ca_cert = str(stack.ca_file)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(configuration) as as_service_account:
        review = client.AuthenticationV1Api(as_service_account).create_self_subject_review({})
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:default"
        # RBAC is on: the default ServiceAccount may not list pods.
        with pytest.raises(ApiException) as forbidden:
            client.CoreV1Api(as_service_account).list_namespaced_pod(namespace)
        assert forbidden.value.status == 403
