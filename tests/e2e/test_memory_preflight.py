"""The operator's memory preflight on the local stack (issue 18): a FineTuneJob with resources.gpuMemory whose
model (a Llama-7B config.json on MinIO, no weights) cannot fit ends Failed/InsufficientMemory with an Event
and without any child Job or pod; one that fits gets its children. The operator reads config.json with its
own credentials from the endpoint it is given (KUBETUNE_MEMORY_PREFLIGHT_ENDPOINT)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.s3 import ensure_bucket
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import Objects, OperatorProcess, wait_until
from kubetune_devtools.tiny_models import LLAMA_7B_CONFIG as LLAMA_7B

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.e2e]
NAMESPACE_GLOB = "t-test-preflight-*"
BUCKET = "memory-preflight-e2e"
FTJ = "finetunejobs"


@pytest.fixture(scope="module")
def model_uri(s3: S3Client) -> str:
    ensure_bucket(s3, BUCKET)
    prefix = secrets.token_hex(4)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/llama-7b/config.json", Body=json.dumps(LLAMA_7B).encode())
    return f"s3://{BUCKET}/{prefix}/llama-7b/"


@pytest.fixture(scope="module")
def preflight_operator(
    stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """An operator (fake workloads) allowed to read config.json from the stack's MinIO with its own keys."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KUBETUNE_MEMORY_PREFLIGHT_ENDPOINT", stack.s3_endpoint_url)
        env.setenv("AWS_ACCESS_KEY_ID", stack.s3_access_key_id)
        env.setenv("AWS_SECRET_ACCESS_KEY", stack.s3_secret_access_key)
        log = tmp_path_factory.mktemp("operator") / "operator.log"
        process = OperatorProcess(stack.kubeconfig, log, namespaces=[NAMESPACE_GLOB]).start()
    yield process
    process.stop()
    print(process.log_tail(60))


@pytest.fixture
def objects(k8s: KubeClients, namespace: str, preflight_operator: OperatorProcess) -> Objects:
    return Objects(k8s.api_client, namespace)


def finetunejob(stack: LocalStack, name: str, model: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": model},
            "dataset": {"uri": f"s3://{BUCKET}/data.jsonl"},
            "output": {"uri": f"s3://{BUCKET}/out/{name}/"},
            "storage": {"endpoint": stack.s3_endpoint_url, "region": stack.s3_region},
            "hyperparameters": {"batchSize": 1, "maxSeqLength": 1024},
            "resources": {"nodes": 1, "gpusPerNode": 1, "gpuMemory": "80Gi"},
            "runPolicy": {"maxRestarts": 0},
            **spec,
        },
    }


def test_preflight_fails_a_7b_full_job_on_80gb_before_any_pod(
    objects: Objects, stack: LocalStack, model_uri: str
) -> None:
    objects.create(
        finetunejob(stack, "seven-b-full", model_uri, method="full", distributed={"strategy": "ddp"})
    )
    status = wait_until(
        lambda: (s := objects.status(FTJ, "seven-b-full")).get("phase") == "Failed" and s,
        60,
        "the job to fail its memory preflight",
        interval=0.5,
    )
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "InsufficientMemory", failed
    message = failed["message"]
    assert message.startswith("memory estimate per GPU "), message
    assert "exceeds the 80.0 GiB of spec.resources.gpuMemory (80Gi)" in message
    assert "would fit: method: lora; method: qlora" in message
    assert "resources.nodes: 2 with distributed.strategy: fsdp" in message
    events = wait_until(
        lambda: [e for e in objects.events("seven-b-full") if e.reason == "InsufficientMemory"],
        30,
        "an InsufficientMemory Event",
        interval=0.5,
    )
    assert events[0].type == "Warning"
    assert objects.jobs("seven-b-full") == [] and objects.pods("seven-b-full") == []


def test_preflight_lets_a_job_that_fits_create_its_children(
    objects: Objects, stack: LocalStack, model_uri: str
) -> None:
    objects.create(finetunejob(stack, "seven-b-lora", model_uri, method="lora"))
    jobs = wait_until(lambda: objects.jobs("seven-b-lora"), 60, "the worker Job", interval=0.5)
    assert len(jobs) == 1
    assert objects.status(FTJ, "seven-b-lora").get("phase") != "Failed"
