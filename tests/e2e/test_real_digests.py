"""Pinning what a job reads by digest, with the REAL trainer and evaluator in the operator's pods on the
local stack: a FineTuneJob whose base model was swapped in S3 after it was pinned (`spec.model.digest`)
fails DigestMismatch before training, one pinned to the uploaded model's digest trains; an EvalJob pinned
to that FineTuneJob's `status.output.digest` scores it, one pinned to another digest fails."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest
from typer.testing import CliRunner

from kubetune_devtools.devstack.s3 import ensure_bucket, upload_directory
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import Objects, OperatorProcess, wait_until
from kubetune_devtools.tiny_models import build_tiny_model, letter_task_spec, reverse_task_rows
from kubetune_operator.cli import app
from kubetune_operator.data.digest import model_digest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from kubetune_devtools.devstack.kube_clients import KubeClients

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# The conftest names namespaces `t-<test name>-<random>`: every test here is `test_real_digest_*`.
NAMESPACE_GLOB = "t-test-real-digest-*"
BUCKET = "real-digests-e2e"
SECRET = "s3-creds"
FTJ, EVJ = "finetunejobs", "evaljobs"
PROMPT, COMPLETION = "Reverse: {{ word }}\n", "{{ reversed }}"


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("digests") / "base", hidden_size=64)


class Uploaded(NamedTuple):
    uri: str  # s3://BUCKET/<key>
    key: str
    base: Path  # the local copy of what <uri>/base/ holds


@pytest.fixture
def uploaded(stack: LocalStack, s3: S3Client, base_model: Path) -> Uploaded:
    """This test's own copy of the base model and 120 rows on MinIO (a test may swap files in it)."""
    ensure_bucket(s3, BUCKET)
    key = secrets.token_hex(4)
    upload_directory(s3, base_model, f"s3://{BUCKET}/{key}/base")
    rows = "".join(json.dumps(row) + "\n" for row in reverse_task_rows(120))
    s3.put_object(Bucket=BUCKET, Key=f"{key}/rows.jsonl", Body=rows)
    return Uploaded(f"s3://{BUCKET}/{key}", key, base_model)


@pytest.fixture
def objects(k8s: KubeClients, namespace: str, s3_secret: str, real_operator: OperatorProcess) -> Objects:
    assert s3_secret == SECRET
    return Objects(k8s.api_client, namespace)


def _storage(stack: LocalStack) -> dict[str, str]:
    return {"endpoint": stack.s3_endpoint_url, "region": stack.s3_region, "credentialsSecret": SECRET}


def finetunejob(stack: LocalStack, name: str, prefix: str, output: str, digest: str) -> dict[str, Any]:
    spec = letter_task_spec(
        f"{prefix}/base/", f"{prefix}/rows.jsonl", output, prompt=PROMPT, completion=COMPLETION, maxSteps=2
    )
    spec["model"]["digest"] = digest
    spec["storage"] = _storage(stack)
    spec["runPolicy"] = {"maxRestarts": 2}
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def evaljob(
    stack: LocalStack, name: str, data: str, *, model: str, digest: str, output: str
) -> dict[str, Any]:
    spec = {
        "model": {"uri": model, "digest": digest},
        "dataset": {"uri": data, "split": "test"},
        "tasks": [{"name": "letters", "templates": [{"prompt": PROMPT, "completion": COMPLETION}]}],
        "metrics": ["exact_match"],
        "generation": {"maxNewTokens": 4, "maxSamples": 4},
        "output": {"uri": output},
        "storage": _storage(stack),
    }
    return {"apiVersion": "kubetune.io/v1alpha1", "kind": "EvalJob", "metadata": {"name": name}, "spec": spec}


def finished(objects: Objects, plural: str, name: str) -> dict[str, Any] | None:
    status = objects.status(plural, name)
    return status if status.get("phase") in ("Succeeded", "Failed") else None


def failed_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == "Failed"), {})


def keys_under(s3: S3Client, uri: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=uri.removeprefix(f"s3://{BUCKET}/"))
    return [item["Key"] for item in listed.get("Contents", [])]


def test_real_digest_swapped_base_model_fails_digest_mismatch_before_training(
    objects: Objects, stack: LocalStack, s3: S3Client, uploaded: Uploaded, tmp_path: Path
) -> None:
    pinned = model_digest(uploaded.base)
    # After pinning, someone replaces the weights in S3 (same names, other tensors).
    other = build_tiny_model(tmp_path / "other", hidden_size=64, seed=7)
    s3.upload_file(str(other / "model.safetensors"), BUCKET, f"{uploaded.key}/base/model.safetensors")
    output = f"{uploaded.uri}/out/"
    objects.create(finetunejob(stack, "swapped", uploaded.uri, output, pinned))

    done = wait_until(lambda: finished(objects, FTJ, "swapped"), 300, "the trainer to refuse", interval=1)
    assert done["phase"] == "Failed", done
    failed = failed_condition(done)
    assert failed["reason"] == "DigestMismatch", failed
    found = model_digest(_with_weights_of(uploaded.base, other, tmp_path / "as-on-s3"))
    assert pinned in failed["message"] and found in failed["message"], failed["message"]
    assert "spec.model.digest" in failed["message"]
    assert done["restarts"] == 0 and not done.get("progress", {}).get("step")
    assert keys_under(s3, output) == []  # no token cache, split files, checkpoint or model


def _with_weights_of(base: Path, other: Path, target: Path) -> Path:
    """The folder as it now lies in S3: the base's files with the other model's weights."""
    target.mkdir()
    for path in base.iterdir():
        source = other / path.name if path.name == "model.safetensors" else path
        (target / path.name).write_bytes(source.read_bytes())
    return target


def test_real_digest_pinned_base_trains_and_its_output_digest_pins_an_evaljob(
    objects: Objects, stack: LocalStack, s3: S3Client, uploaded: Uploaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    output, data, base_digest = (
        f"{uploaded.uri}/out/",
        f"{uploaded.uri}/rows.jsonl",
        model_digest(uploaded.base),
    )
    objects.create(finetunejob(stack, "pinned", uploaded.uri, output, base_digest))
    trained = wait_until(lambda: finished(objects, FTJ, "pinned"), 300, "the pinned FineTuneJob", interval=1)
    assert trained["phase"] == "Succeeded", trained
    recorded = trained["output"]["digest"]
    assert trained["progress"]["step"] == 2 and recorded.startswith("sha256:")
    # What a user pins with: `kubetune digest` over the prefix on S3 gives the base's and the output's.
    for key, value in stack.env().items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    for uri, expected in ((f"{uploaded.uri}/base/", base_digest), (output, recorded)):
        printed = CliRunner().invoke(app, ["digest", uri, "--endpoint", stack.s3_endpoint_url])
        assert printed.exit_code == 0 and printed.output == f"{expected}\n", printed.output

    # A follow-up job pins the output it scores; one pinned to another digest (the base's) is refused.
    evals = f"{uploaded.uri}/evals/"
    objects.create(evaljob(stack, "scores", data, model=output, digest=recorded, output=f"{evals}scores/"))
    objects.create(
        evaljob(stack, "refused", data, model=output, digest=base_digest, output=f"{evals}refused/")
    )
    scored = wait_until(lambda: finished(objects, EVJ, "scores"), 300, "the pinned EvalJob", interval=1)
    assert scored["phase"] == "Succeeded", scored
    assert scored["modelDigest"] == recorded and "exactMatch" in scored["results"]["model"]
    refused = wait_until(lambda: finished(objects, EVJ, "refused"), 300, "the refused EvalJob", interval=1)
    assert refused["phase"] == "Failed", refused
    failed = failed_condition(refused)
    assert failed["reason"] == "DigestMismatch", failed
    assert base_digest in failed["message"] and recorded in failed["message"], failed["message"]
    assert keys_under(s3, f"{evals}refused/") == []
