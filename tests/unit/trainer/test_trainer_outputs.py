"""Checkpoint completeness/pruning, the /progress + /metrics endpoint and digests (the termination message:
tests/unit/operator/test_api_contract.py)."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path

import pytest

from kubetune_operator.data.digest import directory_digest, file_sha256
from kubetune_trainer import checkpoints
from kubetune_trainer.observability import StatusServer, TrainerMetrics


def fake_checkpoint(out: Path, step: int, sealed: bool) -> None:
    staging = out.parent / f"staging-{step}"
    staging.mkdir(parents=True)
    (staging / "model.bin").write_bytes(b"w" * step)
    digests = checkpoints.upload_checkpoint(staging, str(out), step)
    if sealed:
        checkpoints.seal_checkpoint(str(out), step, {"step": step, "tokens": 10 * step}, digests=digests)


def test_a_checkpoint_without_manifest_does_not_exist_and_pruning_keeps_the_newest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for step, sealed in ((10, True), (20, True), (30, True), (40, False)):
        fake_checkpoint(out, step, sealed)
    latest = checkpoints.latest_complete(str(out))
    assert latest is not None and latest.step == 30  # step 40 was interrupted before its manifest
    assert checkpoints.read_checkpoint_state(latest) == {"step": 30, "tokens": 300}
    manifest = json.loads((out / "checkpoints/step-30/manifest.json").read_text())
    assert manifest["files"] == ["model.bin"]
    assert manifest["sha256"] == {"model.bin": hashlib.sha256(b"w" * 30).hexdigest()}
    assert checkpoints.prune_checkpoints(str(out), keep=2) == [10]
    assert [c.step for c in checkpoints.list_checkpoints(str(out))] == [20, 30, 40]
    fake_checkpoint(out, 50, True)
    checkpoints.prune_checkpoints(str(out), keep=2)
    # The incomplete step 40 is older than the newest complete checkpoint: garbage now.
    assert [(c.step, c.complete) for c in checkpoints.list_checkpoints(str(out))] == [(30, True), (50, True)]


def test_progress_and_metrics_are_served(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    monkeypatch.setenv("POD_IP", "127.0.0.1")
    metrics = TrainerMetrics("job-a")
    server = StatusServer(metrics)
    port = server.start()
    assert port
    try:
        metrics.set(metrics.loss, 1.25)
        metrics.inc(metrics.tokens, 4096)
        server.update(
            step=5,
            total_steps=20,
            percent=25.0,
            train_loss=1.25,
            last_checkpoint={"uri": "s3://b/out/checkpoints/step-4", "step": 4},
        )
        progress = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/progress", timeout=5).read())
        assert progress["step"] == 5 and progress["totalSteps"] == 20 and progress["trainLoss"] == 1.25
        assert progress["lastCheckpoint"] == {"uri": "s3://b/out/checkpoints/step-4", "step": 4}
        assert set(progress) >= {"epoch", "percent", "etaSeconds", "evalLoss", "tokensPerSecond", "updatedAt"}
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'kubetune_trainer_loss{job_name="job-a"} 1.25' in text
        assert 'kubetune_trainer_tokens_total{job_name="job-a"} 4096.0' in text
    finally:
        server.stop()


def test_metrics_port_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "off")
    assert StatusServer(TrainerMetrics("x")).start() is None


def test_digest_is_recomputable_with_sha256sum_lines(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub" / "b.txt").write_text("b")
    (tmp_path / "result.json").write_text("{}")
    lines = "".join(
        f"{hashlib.sha256(c.encode()).hexdigest()}  {name}\n"
        for name, c in (("a.txt", "a"), ("sub/b.txt", "b"))
    )
    assert directory_digest(tmp_path) == "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
    assert file_sha256(tmp_path / "a.txt") == hashlib.sha256(b"a").hexdigest()
    before = directory_digest(tmp_path)
    (tmp_path / "a.txt").write_text("changed")
    assert directory_digest(tmp_path) != before
