"""Read and write files and prefixes on S3 or the local disk, addressed by URI.

`s3://bucket/key` goes through boto3 with its default credential chain (environment variables, shared
config, IRSA / web identity, instance profile), so nothing here handles secrets; the endpoint comes from
`StorageOptions.endpoint` or the standard `AWS_ENDPOINT_URL(_S3)` variables. Anything else is a local path
(`file://` accepted). No torch import: the evaluator and the CLI use this module too.

Stable functions: `is_s3`, `join_uri`, `read_bytes`, `read_text`, `write_bytes`, `write_text`, `write_json`,
`exists`, `list_files`, `download_prefix`, `upload_dir`, `delete_prefix`, `safe_local_target`.

Downloads never write outside their folder: S3 (unlike a file system) allows keys such as
`model/../../site-packages/x.py` or `model//etc/x`, and joining those onto a local directory would write
anywhere the process may write. `safe_local_target` refuses them, naming the key.

S3 outages are ridden out inside the process: every S3 call is retried while S3 does not answer
(connection refused or reset, timeouts, 5xx; the contract's `classify` decides) with exponential backoff
(0.5 s doubling to 8 s) for up to `KUBETUNE_STORAGE_RETRY_SECONDS` (default 60; 0: botocore's own three
attempts only), then raises StorageUnreachableError. botocore's retries alone give up after about 0.6 s
against a refused connection, so a restarting MinIO or a network blip would fail the whole job.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from kubetune_operator.api.contract import Reason, StorageUnreachableError, classify
from kubetune_operator.data.errors import ConfigError, UnsafeObjectKeyError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


T = TypeVar("T")

RETRY_SECONDS_ENV = "KUBETUNE_STORAGE_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 60.0
_FIRST_DELAY, _MAX_DELAY = 0.5, 8.0


# The files of a model directory that hold weights (everything else is config and tokenizer, a few MB): the
# dry run and the trainer's first fetch skip them.
MODEL_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def retry_seconds() -> float:
    """How long an S3 call keeps retrying while S3 does not answer ($KUBETUNE_STORAGE_RETRY_SECONDS)."""
    raw = os.environ.get(RETRY_SECONDS_ENV, "").strip()
    if not raw:
        return DEFAULT_RETRY_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise ConfigError(f"{RETRY_SECONDS_ENV}={raw!r}: expected a number of seconds >= 0")
    return seconds


def with_retries(what: str, call: Callable[[], T]) -> T:
    """`call()`, retried with exponential backoff while S3 does not answer, for up to `retry_seconds()`.

    Any other error (a missing key, refused credentials) is raised at once: waiting cannot fix it.
    """
    window = retry_seconds()
    deadline = time.monotonic() + window
    delay = _FIRST_DELAY
    while True:
        try:
            return call()
        except Exception as error:
            if classify(error) is not Reason.STORAGE_UNREACHABLE:
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StorageUnreachableError(
                    f"{what}: S3 did not answer within {window:g} s ({RETRY_SECONDS_ENV}): {error}"
                ) from error
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_DELAY)


@dataclass(frozen=True)
class StorageOptions:
    """Where S3 lives; `None` fields fall back to the AWS environment (AWS_ENDPOINT_URL, AWS_REGION)."""

    endpoint: str | None = None
    region: str | None = None


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> (`bucket`, `a/b`)."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an S3 URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def local_path(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri)


def join_uri(base: str, *parts: str) -> str:
    """Join path segments to a URI or local path with exactly one `/` between them."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def s3_client(options: StorageOptions | None = None) -> S3Client:
    # deferred: boto3 takes ~0.4 s to import; local-path jobs and most CLI verbs never need it
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    options = options or StorageOptions()
    endpoint = options.endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = (
        options.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    )
    # Path-style addressing: MinIO and most in-cluster S3 servers do not serve virtual-host buckets.
    # botocore's standard retries absorb throttling and single 5xx answers; an outage (refused connection,
    # a blackholed endpoint: hence the short connect timeout) is ridden out by `with_retries`.
    config = Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
    )
    return boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)


def read_bytes(uri: str, options: StorageOptions | None = None) -> bytes:
    if is_s3(uri):
        bucket, key = split_s3_uri(uri)
        client = s3_client(options)

        def get() -> bytes:  # the body is read inside the retried call: a lost connection starts again
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()

        return with_retries(uri, get)
    return local_path(uri).read_bytes()


def read_text(uri: str, options: StorageOptions | None = None) -> str:
    return read_bytes(uri, options).decode("utf-8")


def write_bytes(uri: str, data: bytes, options: StorageOptions | None = None) -> None:
    if is_s3(uri):
        bucket, key = split_s3_uri(uri)
        client = s3_client(options)
        with_retries(uri, partial(client.put_object, Bucket=bucket, Key=key, Body=data))
        return
    path = local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write-then-rename so a reader (or a resumed run) never sees a half-written file.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_text(uri: str, text: str, options: StorageOptions | None = None) -> None:
    write_bytes(uri, text.encode("utf-8"), options)


def write_json(uri: str, payload: Any, options: StorageOptions | None = None) -> None:
    write_text(uri, json.dumps(payload, indent=2, sort_keys=True) + "\n", options)


def exists(uri: str, options: StorageOptions | None = None) -> bool:
    if is_s3(uri):
        from botocore.exceptions import ClientError  # noqa: PLC0415  # deferred: as boto3 in s3_client

        bucket, key = split_s3_uri(uri)
        client = s3_client(options)
        try:
            with_retries(uri, partial(client.head_object, Bucket=bucket, Key=key))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True
    return local_path(uri).exists()


def _listed_sizes(uri: str, options: StorageOptions | None) -> dict[str, int]:
    """Every object under the S3 prefix `uri` (recursively): its full URI -> its size in bytes."""
    bucket, key = split_s3_uri(uri)
    client = s3_client(options)
    prefix = key if key.endswith("/") or not key else key + "/"

    def listing() -> dict[str, int]:  # retried as a whole: a page lost mid-way lists the prefix again
        sizes: dict[str, int] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            sizes.update(
                {f"s3://{bucket}/{obj['Key']}": int(obj["Size"]) for obj in page.get("Contents", [])}
            )
        return sizes

    return with_retries(uri, listing)


def list_files(uri: str, options: StorageOptions | None = None) -> list[str]:
    """All files under a prefix (recursively), as full URIs, sorted; a single file lists itself."""
    if is_s3(uri):
        _, key = split_s3_uri(uri)
        found = _listed_sizes(uri, options)
        if not found and key and not key.endswith("/") and exists(uri, options):
            return [uri]
        return sorted(found)
    path = local_path(uri)
    if path.is_file():
        return [str(path)]
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*") if p.is_file())
    return []


def safe_local_target(local_dir: Path, relative_key: str, *, key: str | None = None) -> Path:
    """Where the object `relative_key` (its key below the downloaded prefix) goes inside `local_dir`.

    Refuses (UnsafeObjectKeyError, naming `key`) anything that is not a plain relative path of non-empty
    segments: absolute keys, empty segments (`//`), `.` and `..` segments, NUL bytes and backslashes
    (a separator on Windows). The resolved path is checked too, so a symlink already in `local_dir` cannot
    lead outside either.
    """
    shown = key if key is not None else relative_key
    segments = relative_key.split("/")
    bad = (
        not relative_key
        or relative_key.startswith("/")
        or any(segment in ("", ".", "..") for segment in segments)
        or "\\" in relative_key
        or "\x00" in relative_key
    )
    if bad:
        raise UnsafeObjectKeyError(
            f"refusing object key {shown!r}: it does not name a file inside the download folder "
            "(absolute, '//', '.' or '..' in its path)"
        )
    root = local_dir.resolve()
    target = (root / relative_key).resolve()
    if not target.is_relative_to(root) or target == root:
        raise UnsafeObjectKeyError(f"refusing object key {shown!r}: it resolves outside {local_dir}")
    return target


def download_prefix(
    uri: str,
    local_dir: Path,
    options: StorageOptions | None = None,
    *,
    skip_suffixes: tuple[str, ...] = (),
) -> Path:
    """Make the files under `uri` available in a local directory and return it.

    A local directory is used in place (no copy); an S3 prefix is downloaded into `local_dir`. Every key is
    checked before anything is written, so a prefix holding one unsafe key writes nothing at all.
    Zero-byte "folder" markers (keys ending in `/`) create nothing; keys ending in `skip_suffixes` (e.g.
    weights, for a dry run that only needs the tokenizer) are checked but not downloaded.
    """
    if not is_s3(uri):
        path = local_path(uri)
        if not path.is_dir():
            raise FileNotFoundError(f"{uri}: not a directory")
        return path
    bucket, key = split_s3_uri(uri)
    prefix = key if key.endswith("/") or not key else key + "/"
    client = s3_client(options)
    sizes = _listed_sizes(uri, options)
    files = sorted(sizes)
    if not files:
        if key and not key.endswith("/") and exists(uri, options):
            raise FileNotFoundError(f"{uri}: a single object, not a prefix of files")
        raise FileNotFoundError(f"{uri}: no objects under this prefix")
    targets: list[tuple[str, Path]] = []
    for file_uri in files:
        # Not split_s3_uri: urlparse would cut a key at `?` or `#` and fetch another object.
        file_key = file_uri.removeprefix(f"s3://{bucket}/")
        if not file_key.startswith(prefix):  # list_files lists a lone object `key` as itself
            raise FileNotFoundError(f"{uri}: a single object, not a prefix of files")
        relative = file_key[len(prefix) :]
        if not relative or relative.endswith("/"):  # folder markers: checked, nothing to download
            if relative.rstrip("/"):
                safe_local_target(local_dir, relative[:-1], key=file_key)
            continue
        target = safe_local_target(local_dir, relative, key=file_key)
        if not file_key.endswith(skip_suffixes):
            targets.append((file_key, target))
    for file_key, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        file_uri = f"s3://{bucket}/{file_key}"
        with_retries(file_uri, partial(_download_whole, client, bucket, file_key, target, sizes[file_uri]))
    return local_dir


def _download_whole(client: Any, bucket: str, key: str, target: Path, listed_size: int) -> None:
    """Download one object and check it arrived whole: as many bytes as the listing said. A short or long
    file (a cut transfer, an object rewritten since the listing) is retried like an outage, then fails
    StorageUnreachable; it is never handed on as a model or checkpoint."""
    client.download_file(bucket, key, str(target))
    received = target.stat().st_size
    if received != listed_size:
        raise StorageUnreachableError(
            f"s3://{bucket}/{key}: downloaded {received} bytes, the listing said {listed_size}: the transfer "
            "was cut or the object changed while it was read"
        )


def upload_dir(local_dir: Path, uri: str, options: StorageOptions | None = None) -> list[str]:
    """Copy every file of `local_dir` under `uri`; returns the written URIs (sorted)."""
    written: list[str] = []
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        target = join_uri(uri, path.relative_to(local_dir).as_posix())
        if is_s3(uri):
            bucket, key = split_s3_uri(target)
            client = s3_client(options)
            with_retries(target, partial(client.upload_file, str(path), bucket, key))
        else:
            dest = local_path(target)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        written.append(target)
    return written


def delete_prefix(uri: str, options: StorageOptions | None = None) -> None:
    """Remove everything under a prefix (S3) or a directory tree (local); missing is fine."""
    if is_s3(uri):
        bucket, _ = split_s3_uri(uri)
        client = s3_client(options)
        for file_uri in list_files(uri, options):
            key = split_s3_uri(file_uri)[1]
            with_retries(file_uri, partial(client.delete_object, Bucket=bucket, Key=key))
        return
    shutil.rmtree(local_path(uri), ignore_errors=True)
