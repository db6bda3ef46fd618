"""The token cache on the local stack's real MinIO: built once under output.uri, reused by a restarted pod."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.tiny_models import (
    build_tiny_model,
    letter_task_spec,
    reverse_task_rows,
    write_finetune_job,
    write_rows,
)
from kubetune_operator.data.storage import upload_dir
from kubetune_trainer import token_cache
from kubetune_trainer.entrypoint import run_job

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BUCKET = "trainer-e2e"


def test_a_restarted_pod_trains_from_the_cached_tokens_without_reading_a_row(
    stack: LocalStack, s3: S3Client, s3_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = s3_prefix
    upload_dir(build_tiny_model(tmp_path / "model", hidden_size=64), f"{base}/base/")
    rows = reverse_task_rows(200)
    write_rows(tmp_path / "data" / "part-0.jsonl", rows[:120])
    write_rows(tmp_path / "data" / "part-1.jsonl", rows[120:])
    upload_dir(tmp_path / "data", f"{base}/data/")
    spec = letter_task_spec(
        f"{base}/base/",
        f"{base}/data/",
        f"{base}/out/",
        prompt="Reverse: {{ word }}\n",
        completion="{{ reversed }}",
        maxSteps=3,
        batchSize=8,
    )
    spec["storage"] = {"endpoint": stack.s3_endpoint_url, "region": stack.s3_region}
    job = write_finetune_job(tmp_path / "job.yaml", "cache-job", spec)
    monkeypatch.setenv("KUBETUNE_WORK_DIR", str(tmp_path / "pod-1"))
    first = run_job(job)
    assert first is not None

    prefix = base.removeprefix(f"s3://{BUCKET}/")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/out/split/tokens/")["Contents"]
    cached = {o["Key"].split("/split/tokens/")[1] for o in listed}
    (key,) = {name.split("/")[0] for name in cached}
    assert {
        f"{key}/.complete",
        f"{key}/store/tokens.npy",
        f"{key}/train.npy",
        f"{key}/split/test.jsonl",
    } <= cached

    # A restarted pod: another node's empty work dir, and the job not finished (no result.json yet).
    s3.delete_object(Bucket=BUCKET, Key=f"{prefix}/out/result.json")
    monkeypatch.setenv("KUBETUNE_WORK_DIR", str(tmp_path / "pod-2"))

    def no_rows(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a row was read although the token cache is complete")

    monkeypatch.setattr(token_cache, "iter_file_rows", no_rows)
    monkeypatch.setattr(token_cache, "build_cache", no_rows)
    again = run_job(job)
    assert again is not None
    # Downloaded into the new pod's work dir, and the same tokens in the same order: the same losses.
    assert len(list((tmp_path / "pod-2").glob(f"*/split/tokens/{key}/.complete"))) == 1
    assert again["metrics"]["trainLoss"] == pytest.approx(first["metrics"]["trainLoss"], rel=1e-6)
