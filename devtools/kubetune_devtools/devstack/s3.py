"""S3 credentials of the local MinIO and small boto3 helpers."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str
    region: str = DEFAULT_REGION


def ensure_s3_credentials(path: Path) -> S3Credentials:
    """Generated once per state directory (random secret) and reused, so MinIO's data stays readable."""
    if path.exists():
        data = json.loads(path.read_text())
        return S3Credentials(
            data["access_key_id"], data["secret_access_key"], data.get("region", DEFAULT_REGION)
        )
    credentials = S3Credentials("kubetune", secrets.token_urlsafe(24))
    path.write_text(json.dumps(credentials.__dict__))
    path.chmod(0o600)
    return credentials


def s3_client(endpoint_url: str, credentials: S3Credentials) -> S3Client:
    # deferred: boto3 costs ~1.2 s that `kubetune dev status|env|down` (which import this) skip
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    client: S3Client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        region_name=credentials.region,
        # MinIO serves buckets by path (http://host/bucket/key); virtual hosts would need DNS.
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )
    return client


def ensure_bucket(client: S3Client, bucket: str) -> None:
    """Create `bucket` unless it already exists (idempotent, safe to call from every test)."""
    existing = {entry.get("Name") for entry in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)


def upload_directory(client: S3Client, local_dir: Path, uri: str) -> int:
    """Upload every file under `local_dir` below the `s3://bucket/prefix` URI (keys keep their relative
    paths); returns the file count."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    count = 0
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, prefix + path.relative_to(local_dir).as_posix())
        count += 1
    return count
