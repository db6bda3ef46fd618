"""Checkpoints under `<output.uri>/checkpoints/step-N/`, each made complete by a manifest written last.

A checkpoint without `manifest.json` does not exist (it was interrupted mid-upload): resume ignores it and
pruning removes it. Only the newest `keep` complete checkpoints stay.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubetune_operator.api.timestamps import utc_now
from kubetune_operator.data.storage import (
    StorageOptions,
    delete_prefix,
    download_prefix,
    join_uri,
    list_files,
    read_text,
    upload_dir,
    write_json,
)

MANIFEST = "manifest.json"
_STEP_DIR = re.compile(r"/checkpoints/step-(\d+)/(.+)$")


@dataclass(frozen=True)
class CheckpointInfo:
    step: int
    uri: str
    complete: bool


def checkpoints_uri(output_uri: str) -> str:
    return join_uri(output_uri, "checkpoints")


def checkpoint_uri(output_uri: str, step: int) -> str:
    return join_uri(checkpoints_uri(output_uri), f"step-{step}")


def list_checkpoints(output_uri: str, options: StorageOptions | None = None) -> list[CheckpointInfo]:
    """All checkpoint directories, oldest first, with whether their manifest exists."""
    steps: dict[int, bool] = {}
    for file_uri in list_files(checkpoints_uri(output_uri), options):
        match = _STEP_DIR.search(file_uri)
        if match:
            step = int(match.group(1))
            steps[step] = steps.get(step, False) or match.group(2) == MANIFEST
    return [CheckpointInfo(s, checkpoint_uri(output_uri, s), done) for s, done in sorted(steps.items())]


def latest_complete(output_uri: str, options: StorageOptions | None = None) -> CheckpointInfo | None:
    complete = [c for c in list_checkpoints(output_uri, options) if c.complete]
    return complete[-1] if complete else None


def upload_checkpoint(
    local_dir: Path, output_uri: str, step: int, options: StorageOptions | None = None
) -> str:
    """Upload one process's (or node's) checkpoint files; the manifest comes later (`seal_checkpoint`)."""
    uri = checkpoint_uri(output_uri, step)
    upload_dir(local_dir, uri, options)
    return uri


def seal_checkpoint(
    output_uri: str, step: int, state: dict[str, Any], options: StorageOptions | None = None
) -> str:
    """Write the manifest (after every rank uploaded): from now on the checkpoint exists."""
    uri = checkpoint_uri(output_uri, step)
    files = sorted(f.removeprefix(uri + "/") for f in list_files(uri, options))
    write_json(
        join_uri(uri, MANIFEST),
        {"step": step, "createdAt": utc_now(), "files": files, "state": state},
        options,
    )
    return uri


def prune_checkpoints(output_uri: str, keep: int, options: StorageOptions | None = None) -> list[int]:
    """Delete all but the newest `keep` complete checkpoints, and incomplete ones older than the newest."""
    infos = list_checkpoints(output_uri, options)
    complete = [c for c in infos if c.complete]
    keep_steps = {c.step for c in complete[-keep:]}
    newest = complete[-1].step if complete else -1
    removed = [c.step for c in infos if c.step not in keep_steps and (c.complete or c.step < newest)]
    for step in removed:
        delete_prefix(checkpoint_uri(output_uri, step), options)
    return removed


def read_checkpoint_state(info: CheckpointInfo, options: StorageOptions | None = None) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(read_text(join_uri(info.uri, MANIFEST), options))
    state: dict[str, Any] = manifest["state"]
    return state


def fetch_checkpoint(info: CheckpointInfo, local_dir: Path, options: StorageOptions | None = None) -> Path:
    return download_prefix(info.uri, local_dir, options)
