"""Deterministic train/validation/test split of a dataset's rows, and the split manifest.

A row's part depends only on (seed, row index, number of rows): rows are ordered by
sha256(f"{seed}:{index}") and the first `round(n*test)` go to test, the next `round(n*validation)` to
validation, the rest to train. This is stable across Python versions and machines (unlike `random.shuffle`),
so an EvalJob can recompute or read exactly the held-out rows.

The trainer writes the manifest to `<output.uri>/split/manifest.json` (see `split_manifest_uri`) next to the
rendered `split/test.jsonl` and `split/validation.jsonl`. No torch import.

Stable API: `SplitIndices`, `split_indices`, `build_split_manifest`, `read_split_manifest`,
`manifest_indices`, `split_manifest_uri`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubetune_operator.data.errors import ConfigError, DataError, data_or_outage
from kubetune_operator.data.storage import StorageOptions, join_uri, read_text

SPLITS = ("train", "validation", "test")
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class SplitIndices:
    train: list[int]
    validation: list[int]
    test: list[int]

    def part(self, name: str) -> list[int]:
        if name not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
        indices: list[int] = getattr(self, name)
        return indices


def _part_size(n: int, fraction: float) -> int:
    size = round(n * fraction)
    # A requested hold-out should never silently vanish on a small dataset.
    return max(size, 1) if fraction > 0 and n > 2 else size


def split_indices(n: int, validation: float, test: float, seed: int) -> SplitIndices:
    """Split row indices 0..n-1; each part is returned sorted (file order)."""
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise ConfigError(
            f"dataset.split: validation ({validation}) and test ({test}) must be in [0, 1) "
            "and sum to less than 1"
        )
    order = sorted(range(n), key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())
    n_test, n_val = _part_size(n, test), _part_size(n, validation)
    if n - n_test - n_val < 1:
        raise DataError(f"dataset has {n} rows: nothing left to train on after the validation/test split")
    return SplitIndices(
        train=sorted(order[n_test + n_val :]),
        validation=sorted(order[n_test : n_test + n_val]),
        test=sorted(order[:n_test]),
    )


def split_manifest_uri(output_uri: str) -> str:
    return join_uri(output_uri, "split", "manifest.json")


def build_split_manifest(
    *, seed: int, validation: float, test: float, tasks: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The manifest: per task its dataset URI, row count and the row indices of each part.

    `tasks` items: {"name", "datasetUri", "format", "numRows", "indices": SplitIndices}.
    """
    return {
        "version": MANIFEST_VERSION,
        "seed": seed,
        "fractions": {"validation": validation, "test": test},
        "method": "sha256(f'{seed}:{row}') order; test first, then validation",
        "tasks": [
            {
                "name": t["name"],
                "datasetUri": t["datasetUri"],
                "format": t.get("format", "auto"),
                "numRows": t["numRows"],
                "rows": {part: t["indices"].part(part) for part in SPLITS},
            }
            for t in tasks
        ],
        "files": {"test": "test.jsonl", "validation": "validation.jsonl"},
    }


def read_split_manifest(uri: str, options: StorageOptions | None = None) -> dict[str, Any]:
    """Read a manifest written by a FineTuneJob (`uri` may be the manifest or the job's output.uri)."""
    if not uri.endswith(".json"):
        uri = split_manifest_uri(uri)
    try:
        manifest: dict[str, Any] = json.loads(read_text(uri, options))
    except Exception as err:
        raise data_or_outage(f"{uri}: cannot read the split manifest", err) from err
    if manifest.get("version") != MANIFEST_VERSION:
        raise DataError(f"{uri}: unsupported split manifest version {manifest.get('version')!r}")
    return manifest


def manifest_indices(manifest: dict[str, Any], task: str, part: str) -> list[int]:
    """Row indices of `part` (train/validation/test) of `task` in a manifest."""
    for entry in manifest["tasks"]:
        if entry["name"] == task:
            rows: list[int] = entry["rows"][part]
            return rows
    names = ", ".join(t["name"] for t in manifest["tasks"])
    raise DataError(f"task {task!r} is not in the split manifest (tasks: {names})")
