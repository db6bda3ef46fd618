"""`strategy: fsdp` on two nodes of the local stack with the real trainer under `accelerate launch`: the job
succeeds, exports the same model as the same job with `strategy: ddp`, and its sharded checkpoint (one
shard file per node, uploaded by each node to MinIO) resumes from S3 on one process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from safetensors.torch import load_file

from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import Objects, OperatorProcess, wait_until
from kubetune_devtools.tiny_models import (
    build_tiny_model,
    letter_task_spec,
    reverse_task_rows,
    write_finetune_job,
    write_rows,
)
from kubetune_operator.data.storage import download_prefix, upload_dir
from kubetune_trainer.entrypoint import run_job

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# The conftest names namespaces `t-<test name>-<random>`: every test here is `test_fsdp_e2e_*`.
NAMESPACE_GLOB = "t-test-fsdp-e2e-*"
BUCKET = "fsdp-e2e"
SECRET = "s3-creds"


@pytest.fixture(scope="module")
def operator(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(
        stack.kubeconfig,
        log,
        namespaces=[NAMESPACE_GLOB],
        launcher="accelerate",
        trainer_module="kubetune_trainer",
        pending_timeout=120,
    ).start()
    yield process
    process.stop()
    print(process.log_tail(80))


def job_spec(stack: LocalStack, prefix: str, output: str, strategy: str, steps: int) -> dict[str, Any]:
    spec = letter_task_spec(
        f"{prefix}/base/",
        f"{prefix}/data/letters.jsonl",
        output,
        prompt="Reverse: {{ word }}\n",
        completion="{{ reversed }}",
        maxSteps=steps,
        batchSize=4,  # per process: a global batch of 8 on 2 nodes
        # Constant rate: a resumed run with more steps follows the same schedule.
        lrScheduler="constant",
        warmupRatio=0.0,
    )
    spec["distributed"] = {"strategy": strategy}
    spec["checkpoint"] = {"everySteps": 2, "keep": 1}
    spec["storage"] = {
        "endpoint": stack.s3_endpoint_url,
        "region": stack.s3_region,
        "credentialsSecret": SECRET,
    }
    return spec


def finished(objects: Objects, name: str) -> dict[str, Any] | None:
    status = objects.status("finetunejobs", name)
    return status if status.get("phase") in ("Succeeded", "Failed") else None


@pytest.fixture
def prefix(s3_prefix: str, tmp_path: Path) -> str:
    """A fresh prefix holding the tiny base model and 120 rows (AWS_* set for this process: s3_prefix)."""
    prefix = s3_prefix
    upload_dir(build_tiny_model(tmp_path / "base", hidden_size=64), f"{prefix}/base/")
    rows = write_rows(tmp_path / "data" / "letters.jsonl", reverse_task_rows(120))
    upload_dir(rows.parent, f"{prefix}/data/")
    return prefix


@pytest.fixture
def objects(k8s: KubeClients, namespace: str, s3_secret: str, operator: OperatorProcess) -> Objects:
    assert s3_secret == SECRET  # the Secret job_spec names
    return Objects(k8s.api_client, namespace)


def test_fsdp_e2e_two_nodes_equal_ddp_and_resume_from_s3_on_one_process(
    objects: Objects, stack: LocalStack, s3: S3Client, prefix: str, tmp_path: Path
) -> None:
    results: dict[str, dict[str, Any]] = {}
    for strategy in ("ddp", "fsdp"):  # one after the other: two 2-node gangs at once may not fit
        spec = job_spec(stack, prefix, f"{prefix}/{strategy}/", strategy, steps=6)
        spec["resources"] = {"nodes": 2}
        objects.create(
            {
                "apiVersion": "kubetune.io/v1alpha1",
                "kind": "FineTuneJob",
                "metadata": {"name": strategy},
                "spec": spec,
            }
        )
        status = wait_until(lambda s=strategy: finished(objects, s), 400, f"the {strategy} job", interval=1)
        assert status["phase"] == "Succeeded", status
        pods = objects.pods(strategy)
        assert len({pod.spec.node_name for pod in pods}) == 2
        local = download_prefix(f"{prefix}/{strategy}/", tmp_path / strategy)
        results[strategy] = json.loads((local / "result.json").read_text())
        assert results[strategy]["metrics"]["strategy"] == strategy

    # The same model, whichever strategy trained it.
    ddp = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    fsdp = load_file(str(tmp_path / "fsdp" / "model.safetensors"))
    assert ddp.keys() == fsdp.keys()
    for key in ddp:
        assert (ddp[key] - fsdp[key]).abs().max() < 1e-4, key
    assert results["fsdp"]["metrics"]["trainLoss"] == pytest.approx(
        results["ddp"]["metrics"]["trainLoss"], rel=1e-4
    )
    # Its newest checkpoint (step 4: keep 1; the last step is not checkpointed): one shard per node.
    shards = sorted(p.name for p in (tmp_path / "fsdp" / "checkpoints" / "step-4" / "dcp").iterdir())
    assert shards == [
        "shard-00001-model-00001-of-00001.safetensors",
        "shard-00002-model-00001-of-00001.safetensors",
    ]

    # That 2-node checkpoint, from S3, resumed by ONE process (batch 8 keeps the global batch) for 8 steps,
    # against 8 uninterrupted steps on one process.
    for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix.split('/', 3)[3]}/fsdp/checkpoints/")[
        "Contents"
    ]:
        key = item["Key"].replace("/fsdp/checkpoints/", "/resumed/checkpoints/")
        s3.copy_object(Bucket=BUCKET, Key=key, CopySource={"Bucket": BUCKET, "Key": item["Key"]})
    runs = {}
    for name in ("resumed", "whole"):
        spec = job_spec(stack, prefix, f"{prefix}/{name}/", "fsdp", steps=8)
        spec["hyperparameters"]["batchSize"] = 8
        del spec["storage"]["credentialsSecret"]
        runs[name] = run_job(write_finetune_job(tmp_path / f"{name}.yaml", name, spec))
    resumed, whole = runs["resumed"], runs["whole"]
    assert resumed is not None and whole is not None
    assert resumed["lastCheckpoint"]["step"] >= 4 and resumed["history"][0][0] == 1  # history from the job
    curve = {int(step): loss for step, loss in whole["history"]}
    for step, loss in resumed["history"]:
        assert loss == pytest.approx(curve[int(step)], rel=1e-4), step
    assert resumed["metrics"]["tokens"] == whole["metrics"]["tokens"]
