"""Checkpoint manifests record every file's sha256; verify_checkpoint refuses a folder whose files were
changed, added or removed since (the pure check; resume with the real trainer:
test_trainer_checkpoint_safety.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kubetune_operator.api.contract import DigestMismatchError, Reason, classify
from kubetune_operator.data.digest import listing_digest
from kubetune_trainer import checkpoints


def _sealed(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    staging = tmp_path / "staging"
    (staging / "shards").mkdir(parents=True)
    (staging / "model.safetensors").write_bytes(b"weights")
    (staging / "shards" / "rank-1.safetensors").write_bytes(b"shard")
    out = tmp_path / "out"
    digests = checkpoints.upload_checkpoint(staging, str(out), 4)
    uri, digest = checkpoints.seal_checkpoint(str(out), 4, {"step": 4}, digests=digests)
    manifest = json.loads((Path(uri) / checkpoints.MANIFEST).read_text())
    assert manifest["digest"] == digest
    return Path(uri), manifest


def test_the_manifest_records_each_files_sha256_and_one_digest_over_them(tmp_path: Path) -> None:
    folder, manifest = _sealed(tmp_path)
    expected = {
        "model.safetensors": hashlib.sha256(b"weights").hexdigest(),
        "shards/rank-1.safetensors": hashlib.sha256(b"shard").hexdigest(),
    }
    assert manifest["sha256"] == expected
    assert manifest["digest"] == listing_digest(expected)
    assert checkpoints.verify_checkpoint(folder, manifest, str(folder)) == manifest["digest"]


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (lambda f: (f / "model.safetensors").write_bytes(b"weightz"), "model.safetensors was changed"),
        (lambda f: (f / "shards" / "rank-1.safetensors").unlink(), "shards/rank-1.safetensors is missing"),
        (lambda f: (f / "random_states_0.pkl").write_bytes(b"\x80\x04"), "random_states_0.pkl was added"),
    ],
    ids=["changed", "removed", "added"],
)
def test_a_tampered_checkpoint_is_refused_naming_the_file_and_both_digests(
    tmp_path: Path, tamper: Callable[[Path], object], named: str
) -> None:
    folder, manifest = _sealed(tmp_path)
    tamper(folder)
    with pytest.raises(DigestMismatchError) as refused:
        checkpoints.verify_checkpoint(folder, manifest, "s3://b/out/checkpoints/step-4")
    message = str(refused.value)
    assert named in message and str(manifest["digest"]) in message
    assert "s3://b/out/checkpoints/step-4" in message
    found = listing_digest(
        {
            p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*")
            if p.is_file() and p.name != checkpoints.MANIFEST
        }
    )
    assert found in message
    assert classify(refused.value) is Reason.DIGEST_MISMATCH


def test_a_manifest_without_digests_is_not_verified(tmp_path: Path) -> None:
    folder, manifest = _sealed(tmp_path)
    legacy = {key: value for key, value in manifest.items() if key not in ("sha256", "digest")}
    assert checkpoints.verify_checkpoint(folder, legacy, str(folder)) is None


def test_an_interrupted_save_is_cleared_before_the_same_step_is_saved_again(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stray = out / "checkpoints" / "step-6" / "rng-3.json"
    stray.parent.mkdir(parents=True)
    stray.write_text("{}")  # a rank of an earlier attempt (another world size) uploaded, nobody sealed
    checkpoints.clear_incomplete(str(out), 6)
    assert not stray.parent.exists()
    folder, _ = _sealed(tmp_path)  # step 4, sealed: a complete checkpoint stays
    checkpoints.clear_incomplete(str(out), 4)
    assert (folder / checkpoints.MANIFEST).is_file()


def test_seal_refuses_files_no_rank_uploaded(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "model.safetensors").write_bytes(b"weights")
    out = tmp_path / "out"
    digests = checkpoints.upload_checkpoint(staging, str(out), 8)
    (out / "checkpoints" / "step-8" / "extra.bin").write_bytes(b"?")
    with pytest.raises(RuntimeError, match=r"extra\.bin"):
        checkpoints.seal_checkpoint(str(out), 8, {"step": 8}, digests=digests)
    assert not (out / "checkpoints" / "step-8" / checkpoints.MANIFEST).exists()
