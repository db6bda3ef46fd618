"""Read dataset rows from `.jsonl`, `.json`, `.csv` or `.parquet` files, or a prefix of such shards.

Rows come back as plain dicts in file order (shards sorted by name), so a row's index is stable and the
split manifest can point at it. Errors name the file and the 1-based line/row. No torch import.

Stable functions: `read_rows(uri, options) -> list[dict]`; `dataset_files(uri, options)` and
`iter_file_rows(uri, options)`, which yields one file's rows without holding the others (a local JSONL file is
read line by line; other files, and files on S3, one file at a time), for datasets larger than memory.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from kubetune_operator.data.errors import DataError, data_or_outage
from kubetune_operator.data.storage import StorageOptions, is_s3, list_files, local_path, read_bytes

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")

Row = dict[str, Any]


def read_rows(uri: str, options: StorageOptions | None = None) -> list[Row]:
    """All rows of one file, or of every supported shard under a prefix, concatenated in name order."""
    rows: list[Row] = []
    for shard in dataset_files(uri, options):
        rows.extend(read_file_rows(shard, options))
    return rows


def dataset_files(uri: str, options: StorageOptions | None = None) -> list[str]:
    """The supported files of a dataset URI (one file, or the shards under a prefix) in name order."""
    try:
        files = list_files(uri, options)
    except Exception as err:  # boto/OS errors: turn into a message the user can act on
        raise data_or_outage(f"{uri}: cannot list dataset", err) from err
    shards = [f for f in files if f.lower().endswith(SUPPORTED_SUFFIXES)]
    if not shards:
        if files:
            raise DataError(
                f"{uri}: no {'/'.join(SUPPORTED_SUFFIXES)} files here (found: {', '.join(files[:5])})"
            )
        raise DataError(f"{uri}: dataset not found")
    return shards


def iter_file_rows(uri: str, options: StorageOptions | None = None) -> Iterator[Row]:
    """The rows of one file, in order; a local `.jsonl` file streams line by line (bounded memory)."""
    if is_s3(uri) or not uri.lower().endswith(".jsonl"):
        yield from read_file_rows(uri, options)
        return
    try:
        handle = local_path(uri).open("r", encoding="utf-8-sig")
    except OSError as err:
        raise data_or_outage(f"{uri}: cannot read", err) from err
    with handle:
        try:
            for line_no, line in enumerate(handle, start=1):
                if line.strip():
                    yield _parse_json_line(uri, line_no, line)
        except UnicodeDecodeError as err:
            raise DataError(f"{uri}: not UTF-8 text ({err})") from err


def read_file_rows(uri: str, options: StorageOptions | None = None) -> list[Row]:
    try:
        data = read_bytes(uri, options)
    except Exception as err:
        raise data_or_outage(f"{uri}: cannot read", err) from err
    suffix = uri.lower().rsplit(".", 1)[-1]
    if suffix == "parquet":
        return _parse_parquet(uri, data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{uri}: not UTF-8 text ({err})") from err
    if suffix == "jsonl":
        return _parse_jsonl(uri, text)
    if suffix == "json":
        return _parse_json(uri, text)
    if suffix == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    raise DataError(f"{uri}: unsupported file type (use {', '.join(SUPPORTED_SUFFIXES)})")


def _parse_jsonl(uri: str, text: str) -> list[Row]:
    return [
        _parse_json_line(uri, line_no, line)
        for line_no, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def _parse_json_line(uri: str, line_no: int, line: str) -> Row:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{uri}: line {line_no}: invalid JSON ({err.msg})") from err
    if not isinstance(row, dict):
        raise DataError(f"{uri}: line {line_no}: expected a JSON object, got {type(row).__name__}")
    return row


def _parse_json(uri: str, text: str) -> list[Row]:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        # Many `.json` files in the wild are really JSON lines.
        return _parse_jsonl(uri, text)
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        payload = payload["data"]
    if not isinstance(payload, list):
        raise DataError(f"{uri}: expected a JSON array of objects (or {{'data': [...]}})")
    for index, row in enumerate(payload, start=1):
        if not isinstance(row, dict):
            raise DataError(f"{uri}: row {index}: expected a JSON object, got {type(row).__name__}")
    return payload


def _parse_parquet(uri: str, data: bytes) -> list[Row]:
    # deferred: pyarrow is in the trainer and evaluator extras only (the operator image has none)
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as err:
        raise DataError(f"{uri}: not a readable parquet file ({err})") from err
    rows: list[Row] = table.to_pylist()
    return rows
