"""The operator with the REAL trainer and evaluator in its pods (no fakes), on the local stack: what a
user's manifest gets. Each path goes through the workload contract (kubetune_operator.api.contract):
the digest and the final progress of a success, InvalidSpec for bad data, and children of a FineTuneJob
and an EvalJob of the same name kept apart."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.node_agent.images import local_image_id
from kubetune_devtools.devstack.s3 import ensure_bucket, upload_directory
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.argocd_health import argocd_health
from kubetune_devtools.testing.operator_harness import Objects, OperatorProcess, wait_until
from kubetune_devtools.tiny_models import build_tiny_model, letter_task_spec, reverse_task_rows
from kubetune_operator.data.digest import directory_digest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# The conftest names namespaces `t-<test name>-<random>`: every test here is `test_real_*`.
NAMESPACE_GLOB = "t-test-real-*"
BUCKET = "real-workloads-e2e"
SECRET = "s3-creds"
FTJ, EVJ = "finetunejobs", "evaljobs"
PROMPT, COMPLETION = "Reverse: {{ word }}\n", "{{ reversed }}"


@pytest.fixture(scope="module")
def bucket_prefix(stack: LocalStack, s3: S3Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny base model and two datasets on MinIO: 120 good rows, and the same with row 137 of 200
    lacking the template's field."""
    ensure_bucket(s3, BUCKET)
    prefix = secrets.token_hex(4)
    root = tmp_path_factory.mktemp("real")
    upload_directory(s3, build_tiny_model(root / "base", hidden_size=64), f"s3://{BUCKET}/{prefix}/base")
    good = reverse_task_rows(120)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/good.jsonl", Body="".join(json.dumps(r) + "\n" for r in good))
    bad = reverse_task_rows(200)
    del bad[136]["word"]  # row 137 (1-based)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/bad.jsonl", Body="".join(json.dumps(r) + "\n" for r in bad))
    return f"s3://{BUCKET}/{prefix}"


@pytest.fixture
def objects(k8s: KubeClients, namespace: str, s3_secret: str, real_operator: OperatorProcess) -> Objects:
    assert s3_secret == SECRET  # what the jobs' storage.credentialsSecret names
    return Objects(k8s.api_client, namespace)


def finetunejob(
    stack: LocalStack, name: str, model: str, data: str, output: str, *, method: str = "full"
) -> dict[str, Any]:
    spec = letter_task_spec(
        model, data, output, prompt=PROMPT, completion=COMPLETION, method=method, maxSteps=4, batchSize=8
    )
    spec["storage"] = {
        "endpoint": stack.s3_endpoint_url,
        "region": stack.s3_region,
        "credentialsSecret": SECRET,
    }
    spec["runPolicy"] = {"maxRestarts": 2}
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def ran_in(objects: Objects, name: str, kind: str) -> set[str]:
    """The image IDs the pods of job `name` of `kind` (kubetune.io/kind label) ran."""
    pods = [p for p in objects.pods(name) if (p.metadata.labels or {}).get("kubetune.io/kind") == kind]
    return {status.image_id for pod in pods for status in pod.status.container_statuses or []}


def finished(objects: Objects, plural: str, name: str) -> dict[str, Any] | None:
    status = objects.status(plural, name)
    return status if status.get("phase") in ("Succeeded", "Failed") else None


def failed_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == "Failed"), {})


def s3_json(s3: S3Client, uri: str) -> Any:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/"))["Body"].read())


def digest_on_s3(s3: S3Client, uri: str, tmp_path: Path) -> str:
    """The digest recomputed from what is on S3: the exported model files, as docs/trainer.md defines it."""
    prefix = uri.removeprefix(f"s3://{BUCKET}/")
    local = tmp_path / "exported"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"].removeprefix(prefix)
            if relative == "result.json" or relative.split("/")[0] in {"split", "checkpoints"}:
                continue
            (local / relative).parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(BUCKET, item["Key"], str(local / relative))
    return directory_digest(local)


def test_real_trainer_success_reports_the_digest_and_final_progress(
    objects: Objects,
    stack: LocalStack,
    s3: S3Client,
    *,
    bucket_prefix: str,
    tmp_path: Path,
    real_operator: OperatorProcess,
) -> None:
    output = f"{bucket_prefix}/out/{objects.namespace}/"
    objects.create(
        finetunejob(stack, "tune", f"{bucket_prefix}/base/", f"{bucket_prefix}/good.jsonl", output)
    )
    done = wait_until(lambda: finished(objects, FTJ, "tune"), 300, "the real trainer to finish", interval=1)
    assert done["phase"] == "Succeeded", done
    assert done["output"] == {"uri": output, "digest": digest_on_s3(s3, output, tmp_path)}
    # The final report came with the termination message: the status of a finished job is final.
    progress = done["progress"]
    assert progress["step"] == progress["totalSteps"] == 4 and progress["percent"] == 100.0
    assert progress["trainLoss"] > 0 and done["restarts"] == 0
    # What Argo CD shows for the real object (the chart's health check, docs/deploy.md).
    assert argocd_health(objects.get(FTJ, "tune") or {})[0] == "Healthy"
    # The trainer ran inside the trainer image (docs/node-agent.md "Images"), not the checkout.
    assert ran_in(objects, "tune", "FineTuneJob") == {local_image_id(real_operator.trainer_image)}


def test_real_trainer_bad_row_fails_at_once_with_invalid_spec(
    objects: Objects, stack: LocalStack, bucket_prefix: str
) -> None:
    output = f"{bucket_prefix}/out/{objects.namespace}/"
    objects.create(finetunejob(stack, "typo", f"{bucket_prefix}/base/", f"{bucket_prefix}/bad.jsonl", output))
    done = wait_until(lambda: finished(objects, FTJ, "typo"), 300, "the real trainer to fail", interval=1)
    assert done["phase"] == "Failed", done
    failed = failed_condition(done)
    assert failed["reason"] == "InvalidSpec", failed
    assert "row 137" in failed["message"] and "word" in failed["message"], failed["message"]
    assert done["restarts"] == 0  # not retried: the same data would fail the same way
    assert len(objects.jobs("typo")) == 1
    health, message = argocd_health(objects.get(FTJ, "typo") or {})
    assert health == "Degraded" and message.startswith("InvalidSpec: ") and "row 137" in message, message


def test_real_finetunejob_and_evaljob_of_the_same_name_both_succeed_lora_without_a_baseline(
    objects: Objects, stack: LocalStack, s3: S3Client, bucket_prefix: str, real_operator: OperatorProcess
) -> None:
    """Also the LoRA path across pods: the EvalJob names no baseline, so the evaluator applies the adapter
    to the base its adapter_config.json records. The pods share no /tmp (docs/node-agent.md), so that base
    must be the FineTuneJob's spec.model.uri on S3, not the trainer pod's scratch copy."""
    output = f"{bucket_prefix}/out/{objects.namespace}/"
    base = f"{bucket_prefix}/base/"
    objects.create(finetunejob(stack, "pair", base, f"{bucket_prefix}/good.jsonl", output, method="lora"))
    objects.create(
        {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "EvalJob",
            "metadata": {"name": "pair"},
            "spec": {
                "model": {"fineTuneJobRef": {"name": "pair"}},  # and no spec.baseline
                "dataset": {"uri": f"{bucket_prefix}/good.jsonl", "split": "test"},
                "tasks": [{"name": "letters", "templates": [{"prompt": PROMPT, "completion": COMPLETION}]}],
                "metrics": ["exact_match", "rouge"],
                "generation": {"maxNewTokens": 8},
                "output": {"uri": f"{bucket_prefix}/evals/{objects.namespace}/"},
                "storage": {
                    "endpoint": stack.s3_endpoint_url,
                    "region": stack.s3_region,
                    "credentialsSecret": SECRET,
                },
            },
        }
    )
    trained = wait_until(lambda: finished(objects, FTJ, "pair"), 300, "the FineTuneJob", interval=1)
    assert trained["phase"] == "Succeeded", trained
    assert s3_json(s3, f"{output}adapter_config.json")["base_model_name_or_path"] == base
    evaluated = wait_until(lambda: finished(objects, EVJ, "pair"), 300, "the EvalJob", interval=1)
    assert evaluated["phase"] == "Succeeded", evaluated
    assert evaluated["modelUri"] == output and "exactMatch" in evaluated["results"]["model"]
    # The adapter was found, applied to the base fetched from S3, and scored.
    results = s3_json(s3, f"{bucket_prefix}/evals/{objects.namespace}/results.json")
    assert results["model"]["uri"] == output and results["model"]["adapter"] is True
    # Each in its own image: the trainer's and the evaluator's (docs/node-agent.md "Images").
    assert ran_in(objects, "pair", "FineTuneJob") == {local_image_id(real_operator.trainer_image)}
    assert ran_in(objects, "pair", "EvalJob") == {local_image_id(real_operator.evaluator_image)}
    # Each kind has its own children, owned by its own UID.
    uids = {kind: (objects.get(kind, "pair") or {})["metadata"]["uid"] for kind in (FTJ, EVJ)}
    owners = {job.metadata.name: job.metadata.owner_references[0].uid for job in objects.jobs("pair")}
    assert owners == {"pair-r0": uids[FTJ], "pair-eval-0": uids[EVJ]}
    core: Any = objects.core
    config_maps = core.list_namespaced_config_map(
        objects.namespace, label_selector="kubetune.io/job-name=pair"
    )
    names = {c.metadata.name: c.metadata.owner_references[0].uid for c in config_maps.items}
    assert names == {"pair-config": uids[FTJ], "pair-eval": uids[EVJ]}


def test_real_second_job_on_the_same_output_fails_with_output_in_use(
    objects: Objects, stack: LocalStack, s3: S3Client, bucket_prefix: str, tmp_path: Path
) -> None:
    output = f"{bucket_prefix}/out/{objects.namespace}/"
    model, data = f"{bucket_prefix}/base/", f"{bucket_prefix}/good.jsonl"
    objects.create(finetunejob(stack, "first", model, data, output))
    first = wait_until(lambda: finished(objects, FTJ, "first"), 300, "the first job", interval=1)
    assert first["phase"] == "Succeeded", first
    objects.create(finetunejob(stack, "second", model, data, output))
    second = wait_until(lambda: finished(objects, FTJ, "second"), 300, "the second job", interval=1)
    assert second["phase"] == "Failed", second
    failed = failed_condition(second)
    assert failed["reason"] == "OutputInUse", failed
    assert f"{objects.namespace}/first" in failed["message"] and second["restarts"] == 0
    # The first job's model is untouched.
    assert digest_on_s3(s3, output, tmp_path) == first["output"]["digest"]


def test_real_recreated_job_with_a_changed_spec_trains_again_on_its_output(
    objects: Objects, stack: LocalStack, s3: S3Client, bucket_prefix: str, tmp_path: Path
) -> None:
    output = f"{bucket_prefix}/out/{objects.namespace}/"
    model, data = f"{bucket_prefix}/base/", f"{bucket_prefix}/good.jsonl"
    objects.create(finetunejob(stack, "redo", model, data, output))
    old = wait_until(lambda: finished(objects, FTJ, "redo"), 300, "the first incarnation", interval=1)
    assert old["phase"] == "Succeeded", old
    objects.delete(FTJ, "redo")
    wait_until(lambda: objects.get(FTJ, "redo") is None, 60, "the first incarnation gone")
    changed = finetunejob(stack, "redo", model, data, output)
    changed["spec"]["hyperparameters"]["learningRate"] = "1e-3"
    objects.create(changed)
    new = wait_until(lambda: finished(objects, FTJ, "redo"), 300, "the second incarnation", interval=1)
    # Neither the old Job nor the old result was taken over: the new job trained and replaced the model.
    assert new["phase"] == "Succeeded", new
    assert new["output"]["digest"] != old["output"]["digest"]
    assert new["output"]["digest"] == digest_on_s3(s3, output, tmp_path)
    uid = (objects.get(FTJ, "redo") or {})["metadata"]["uid"]
    assert [job.metadata.owner_references[0].uid for job in objects.jobs("redo")] == [uid]


def test_real_trainer_over_its_memory_limit_fails_out_of_memory_without_a_restart(
    objects: Objects, stack: LocalStack, bucket_prefix: str
) -> None:
    # 160 MiB cannot even hold torch: the kernel's OOM killer ends the trainer (the node agent's memory
    # cgroup, as a kubelet's), and the same spec would run out again, so the gang is not restarted.
    output = f"{bucket_prefix}/out/{objects.namespace}/"
    body = finetunejob(stack, "small", f"{bucket_prefix}/base/", f"{bucket_prefix}/good.jsonl", output)
    body["spec"]["resources"] = {"memory": "160Mi"}
    objects.create(body)
    done = wait_until(
        lambda: finished(objects, FTJ, "small"), 180, "the trainer to be OOM-killed", interval=1
    )
    assert done["phase"] == "Failed", done
    failed = failed_condition(done)
    assert failed["reason"] == "OutOfMemory", failed
    assert "OOMKilled" in failed["message"] and "resources.memory" in failed["message"], failed["message"]
    assert done["restarts"] == 0 and len(objects.jobs("small")) == 1
