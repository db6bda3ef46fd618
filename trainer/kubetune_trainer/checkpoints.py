"""Checkpoints under `<output.uri>/checkpoints/step-N/`, each made complete by a manifest written last.

A checkpoint without `manifest.json` does not exist (it was interrupted mid-upload): resume ignores it and
pruning removes it. Only the newest `keep` complete checkpoints stay.

The manifest records the sha256 of every file (`sha256`, hashed from the local copy before upload) and one
digest over them (`digest`, the listing digest of kubetune_operator.data.digest). Resume checks the
downloaded files against it before reading any of them, and refuses a checkpoint whose files were changed,
added or removed since (DigestMismatch) instead of loading it or starting from scratch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubetune_operator.api.contract import DigestMismatchError
from kubetune_operator.api.timestamps import utc_now
from kubetune_operator.data.digest import file_digests, listing_digest
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


def clear_incomplete(output_uri: str, step: int, options: StorageOptions | None = None) -> None:
    """Remove what an interrupted save left in this step's folder (no manifest), before saving it again:
    its stray files would be no rank's and the manifest could not vouch for them."""
    uri = checkpoint_uri(output_uri, step)
    files = list_files(uri, options)
    if files and join_uri(uri, MANIFEST) not in files:
        delete_prefix(uri, options)


def upload_checkpoint(
    local_dir: Path, output_uri: str, step: int, options: StorageOptions | None = None
) -> dict[str, str]:
    """Upload one process's (or node's) checkpoint files; the manifest comes later (`seal_checkpoint`).
    Returns their sha256 by relative path, hashed from the local files (what was meant to be uploaded)."""
    digests = file_digests(local_dir)
    upload_dir(local_dir, checkpoint_uri(output_uri, step), options)
    return digests


def seal_checkpoint(
    output_uri: str,
    step: int,
    state: dict[str, Any],
    options: StorageOptions | None = None,
    *,
    digests: Mapping[str, str],
) -> tuple[str, str]:
    """Write the manifest (after every rank uploaded), with every file's sha256 (`digests`: all ranks'
    `upload_checkpoint` results): from now on the checkpoint exists. Returns its URI and digest."""
    uri = checkpoint_uri(output_uri, step)
    # Without the manifest itself: a step saved twice (a SIGTERM right after its periodic save) has one.
    files = sorted(name for f in list_files(uri, options) if (name := f.removeprefix(uri + "/")) != MANIFEST)
    unrecorded = sorted(set(files) - set(digests))
    if unrecorded:
        # Another writer in this checkpoint's folder: no manifest, so it never counts as complete.
        raise RuntimeError(f"{uri}: files no rank uploaded: {', '.join(unrecorded[:5])}")
    digest = listing_digest(digests)
    manifest = {
        "step": step,
        "createdAt": utc_now(),
        "files": files,
        "sha256": dict(sorted(digests.items())),
        "digest": digest,
        "state": state,
    }
    write_json(join_uri(uri, MANIFEST), manifest, options)
    return uri, digest


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


def read_manifest(info: CheckpointInfo, options: StorageOptions | None = None) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(read_text(join_uri(info.uri, MANIFEST), options))
    return manifest


def read_checkpoint_state(info: CheckpointInfo, options: StorageOptions | None = None) -> dict[str, Any]:
    state: dict[str, Any] = read_manifest(info, options)["state"]
    return state


def fetch_checkpoint(info: CheckpointInfo, local_dir: Path, options: StorageOptions | None = None) -> Path:
    return download_prefix(info.uri, local_dir, options)


def verify_checkpoint(directory: Path, manifest: Mapping[str, Any], uri: str) -> str | None:
    """Check the checkpoint's files in `directory` against its manifest before any is read; returns the
    checkpoint's digest (None for a manifest without digests, from a trainer before they were recorded).
    DigestMismatchError names the first file that differs and both digests of the checkpoint."""
    recorded = manifest.get("sha256")
    if not isinstance(recorded, dict):
        return None
    found = file_digests(directory, exclude=(MANIFEST,))
    expected, actual = listing_digest(recorded), listing_digest(found)
    if found == recorded:
        return actual
    changed = sorted(name for name in recorded.keys() & found.keys() if recorded[name] != found[name])
    problems = (
        [f"{name} was changed" for name in changed]
        + [f"{name} is missing" for name in sorted(recorded.keys() - found.keys())]
        + [f"{name} was added" for name in sorted(found.keys() - recorded.keys())]
    )
    raise DigestMismatchError(
        f"checkpoint {uri}: its files have digest {actual}, not the {expected} its manifest recorded "
        f"({'; '.join(problems[:3])}); refusing to resume from it. Delete this checkpoint folder to resume "
        "from the one before it (or train from scratch when it was the only one)"
    )
