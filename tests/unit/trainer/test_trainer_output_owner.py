"""Whose output lies under output.uri: another job's result or checkpoints are never reused (OutputInUse)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubetune_operator.api import FineTuneJob
from kubetune_operator.api.contract import OutputInUseError, Reason
from kubetune_trainer import checkpoints
from kubetune_trainer.output_owner import claim_output, job_identity
from kubetune_trainer.recipe import finished_result


def job(out: Path, name: str = "tune", uid: str | None = "uid-1", lr: str = "1e-3") -> FineTuneJob:
    metadata: dict[str, Any] = {"name": name, "namespace": "team-a"}
    if uid is not None:
        metadata["uid"] = uid
    return FineTuneJob.model_validate(
        {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": metadata,
            "spec": {
                "model": {"uri": "s3://models/base/"},
                "dataset": {"uri": "s3://data/x.jsonl"},
                "hyperparameters": {"learningRate": lr},
                "output": {"uri": str(out)},
            },
        }
    )


def write_result(out: Path, owner: FineTuneJob) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result = {"output": {"uri": str(out), "digest": "sha256:x"}, "job": job_identity(owner)}
    (out / "result.json").write_text(json.dumps(result))


def test_claims() -> None:
    mine = {"namespace": "a", "name": "tune", "uid": "u1", "specHash": "s1"}
    assert claim_output({**mine}, mine, "x") == "ours"  # a restarted attempt
    assert claim_output({**mine, "uid": "u0"}, mine, "x") == "ours"  # re-created, same training spec
    assert claim_output({**mine, "uid": "u0", "specHash": "s0"}, mine, "x") == "redo"  # re-created, changed
    assert claim_output(None, mine, "x") == "ours"  # written before identities were recorded
    assert claim_output({**mine, "uid": "u0"}, {**mine, "uid": None}, "x") == "ours"  # local kubetune train
    with pytest.raises(
        OutputInUseError, match=r"a/other \(uid u9\); give this job its own output.uri"
    ) as error:
        claim_output({**mine, "name": "other", "uid": "u9"}, mine, "s3://m/out/result.json")
    assert error.value.reason is Reason.OUTPUT_IN_USE


def test_spec_hash_covers_training_fields_only(tmp_path: Path) -> None:
    a, b = job(tmp_path), job(tmp_path, lr="2e-3")
    assert job_identity(a)["specHash"] != job_identity(b)["specHash"]
    c = job(tmp_path).model_copy(update={"spec": a.spec.model_copy(update={"image": "other:1"})})
    assert job_identity(c)["specHash"] == job_identity(a)["specHash"]


def test_another_jobs_result_is_refused_and_a_recreated_one_retrains_when_its_spec_changed(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    write_result(out, job(out, name="first", uid="uid-0"))
    with pytest.raises(OutputInUseError, match="team-a/first"):
        finished_result(job(out))
    write_result(out, job(out, uid="uid-0", lr="5e-4"))
    assert finished_result(job(out)) is None  # same name, other spec: train again
    write_result(out, job(out, uid="uid-0"))
    reused = finished_result(job(out))  # same name, same spec: the same work, already done
    assert reused is not None and reused["output"]["digest"] == "sha256:x"


def test_another_jobs_checkpoints_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "model.safetensors").write_bytes(b"w")
    digests = checkpoints.upload_checkpoint(staging, str(out), 10)
    other = job_identity(job(out, name="first", uid="uid-0"))
    checkpoints.seal_checkpoint(str(out), 10, {"step": 10, "job": other}, digests=digests)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    with pytest.raises(OutputInUseError, match="checkpoints/step-10"):
        finished_result(job(out))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
