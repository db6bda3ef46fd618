"""The trainer against the local stack's real MinIO: data shards, model, checkpoints and output on S3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.tiny_models import (
    build_tiny_model,
    letter_task_spec,
    reverse_task_rows,
    write_finetune_job,
    write_rows,
)
from kubetune_operator.data.datasets import read_rows
from kubetune_operator.data.digest import directory_digest
from kubetune_operator.data.errors import DataError
from kubetune_operator.data.storage import StorageOptions, download_prefix, upload_dir
from kubetune_trainer.entrypoint import run_job

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BUCKET = "trainer-e2e"


def test_shards_on_s3_are_read_in_order_and_missing_objects_are_named(s3_prefix: str, tmp_path: Path) -> None:
    rows = reverse_task_rows(30)
    write_rows(tmp_path / "shards" / "part-0.jsonl", rows[:10])
    write_rows(tmp_path / "shards" / "part-1.jsonl", rows[10:])
    upload_dir(tmp_path / "shards", f"{s3_prefix}/data/")
    assert read_rows(f"{s3_prefix}/data/") == rows
    with pytest.raises(DataError, match=r"missing\.jsonl: dataset not found"):
        read_rows(f"{s3_prefix}/missing.jsonl")


def test_training_from_and_to_s3_with_checkpoints_and_result(
    s3_prefix: str, stack: LocalStack, s3: S3Client, tmp_path: Path
) -> None:
    upload_dir(build_tiny_model(tmp_path / "model", hidden_size=64), f"{s3_prefix}/base/")
    upload_dir(
        write_rows(tmp_path / "data" / "letters.jsonl", reverse_task_rows(120)).parent, f"{s3_prefix}/data/"
    )
    spec = letter_task_spec(
        f"{s3_prefix}/base/",
        f"{s3_prefix}/data/letters.jsonl",
        f"{s3_prefix}/out/",
        prompt="Reverse: {{ word }}\n",
        completion="{{ reversed }}",
        maxSteps=6,
        batchSize=8,
    )
    spec["checkpoint"] = {"everySteps": 2, "keep": 2}
    spec["storage"] = {"endpoint": stack.s3_endpoint_url, "region": stack.s3_region}
    result = run_job(write_finetune_job(tmp_path / "job.yaml", "s3-job", spec))
    assert result is not None and result["metrics"]["steps"] == 6

    prefix = s3_prefix.removeprefix(f"s3://{BUCKET}/")
    keys = {
        o["Key"].removeprefix(prefix + "/")
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    }
    assert {
        "out/result.json",
        "out/model.safetensors",
        "out/README.md",
        "out/split/manifest.json",
        "out/split/test.jsonl",
    } <= keys
    # keep=2: steps 2 and 4 were saved, nothing older than the newest two remains; each is sealed.
    assert {k for k in keys if k.startswith("out/checkpoints/") and k.endswith("manifest.json")} == {
        "out/checkpoints/step-2/manifest.json",
        "out/checkpoints/step-4/manifest.json",
    }
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{prefix}/out/result.json")["Body"].read())
    assert stored["output"]["digest"] == result["output"]["digest"]
    local = download_prefix(
        f"{s3_prefix}/out/", tmp_path / "downloaded", StorageOptions(stack.s3_endpoint_url)
    )
    exported = [
        p.relative_to(local).as_posix()
        for p in local.rglob("*")
        if p.is_file()
        and (p.name == "result.json" or p.relative_to(local).parts[0] in {"split", "checkpoints"})
    ]
    assert directory_digest(local, exclude=tuple(exported)) == result["output"]["digest"]


def test_download_stays_inside_its_folder_and_minio_refuses_climbing_keys(
    s3_prefix: str, s3: S3Client, tmp_path: Path
) -> None:
    prefix = s3_prefix.removeprefix(f"s3://{BUCKET}/")
    for key in ("model/config.json", "model/sub/weights.bin", "model/sub/"):  # the last: a folder marker
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{key}", Body=b"" if key.endswith("/") else b"x")
    target = tmp_path / "download"
    download_prefix(f"{s3_prefix}/model/", target)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "download/config.json",
        "download/sub/weights.bin",
    ]
    # MinIO rejects keys that climb out (AWS S3 stores them): the refusal on download is tested against a
    # listing that holds them (tests/unit/evaluator/test_eval_unsafe_keys.py).
    for key in ("model/../../escape", "model//abs/path"):
        with pytest.raises(ClientError, match="XMinioInvalid"):
            s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{key}", Body=b"x")
