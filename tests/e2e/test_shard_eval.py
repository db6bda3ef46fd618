"""A sharded EvalJob on the local stack, with the REAL evaluator in its pods: the same MMLU-format EvalJob
(tiny model and a baseline, 5-shot) with `resources.nodes: 2` publishes exactly the numbers of `nodes: 1`
(status, results.json, samples.jsonl) and leaves no shard files behind; status.progress counts the samples
of both pods."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.s3 import ensure_bucket, upload_directory
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import Objects, OperatorProcess, wait_until
from kubetune_devtools.tiny_models import build_tiny_model

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# The conftest names namespaces `t-<test name>-<random>`: every test here is `test_shard_*`.
NAMESPACE_GLOB = "t-test-shard-*"
BUCKET = "shard-eval-e2e"
SECRET = "s3-creds"
MMLU = Path(__file__).parents[1] / "data" / "mmlu"


@pytest.fixture
def objects(k8s: KubeClients, namespace: str, s3_secret: str, real_operator: OperatorProcess) -> Objects:
    assert s3_secret == SECRET  # what the jobs' storage.credentialsSecret names
    return Objects(k8s.api_client, namespace)


def _evaljob(stack: LocalStack, name: str, root: str, nodes: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "EvalJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": f"{root}/model/"},
            "baseline": {"uri": f"{root}/baseline/"},
            "dataset": {"uri": f"{root}/mmlu/test.jsonl"},
            "tasks": [{"name": "mmlu", "benchmark": "mmlu", "fewshotUri": f"{root}/mmlu/dev.jsonl"}],
            "metrics": ["accuracy"],
            "fewshot": {"numFewshot": 5},
            # 30 questions in batches of 4: 8 batches, 4 for each pod.
            "generation": {"batchSize": 4},
            "thresholds": {"accuracy": 0.3, "maxRegression": 0.05},
            "resources": {"nodes": nodes},
            "output": {"uri": f"{root}/evals/{name}/"},
            "storage": {
                "endpoint": stack.s3_endpoint_url,
                "region": stack.s3_region,
                "credentialsSecret": SECRET,
            },
        },
    }


def _finished(objects: Objects, name: str) -> dict[str, Any] | None:
    status = objects.status("evaljobs", name)
    return status if status.get("phase") in ("Succeeded", "Failed") else None


def _wait_finished(objects: Objects, name: str) -> dict[str, Any]:
    return wait_until(lambda: _finished(objects, name), 420, f"EvalJob {name}", interval=2)


def _read(s3: S3Client, key: str) -> str:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()


def test_shard_eval_on_two_pods_equals_one_pod(
    objects: Objects, stack: LocalStack, s3: S3Client, tmp_path: Path
) -> None:
    ensure_bucket(s3, BUCKET)
    prefix = f"{objects.namespace}-{secrets.token_hex(3)}"
    upload_directory(s3, build_tiny_model(tmp_path / "model", seed=3), f"s3://{BUCKET}/{prefix}/model")
    upload_directory(s3, build_tiny_model(tmp_path / "baseline", seed=4), f"s3://{BUCKET}/{prefix}/baseline")
    upload_directory(s3, MMLU, f"s3://{BUCKET}/{prefix}/mmlu")
    root = f"s3://{BUCKET}/{prefix}"
    for name, nodes in (("one", 1), ("two", 2)):
        objects.create(_evaljob(stack, name, root, nodes))

    statuses = {name: _wait_finished(objects, name) for name in ("one", "two")}
    for status in statuses.values():
        assert status["phase"] == "Succeeded", status
    (job,) = objects.jobs("two")
    assert job.spec.completions == 2 and job.status.succeeded == 2
    one, two = statuses["one"], statuses["two"]
    assert two["results"] == one["results"] and "accuracy" in one["results"]["model"]
    assert (two["verdict"], two.get("verdictReasons")) == (one["verdict"], one.get("verdictReasons"))
    # Live progress reached the status while the pods ran (rank 0's /progress, both shards' samples:
    # 30 questions x model and baseline), completed on success.
    for status in (one, two):
        progress = status["progress"]
        assert (progress["samples"], progress["totalSamples"], progress["percent"]) == (60, 60, 100.0)

    results = {name: json.loads(_read(s3, f"{prefix}/evals/{name}/results.json")) for name in ("one", "two")}
    for document in results.values():
        document.pop("reportUri")
    assert results["two"] == results["one"]
    assert results["one"]["tasks"]["mmlu"]["samples"] == 30
    samples = {name: _read(s3, f"{prefix}/evals/{name}/samples.jsonl") for name in ("one", "two")}
    assert samples["two"] == samples["one"]
    # Rank 0 removed the shard files once the results were out.
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/evals/two/shards/")
    assert listed.get("KeyCount", 0) == 0
