"""spec.model.digest pins the base model: the trainer checks the files it fetched before reading any of them
and fails with DigestMismatch (both digests named, nothing trained or written) when they differ."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kubetune_devtools.tiny_models import letter_task_spec, reverse_task_rows, write_finetune_job, write_rows
from kubetune_operator.api.contract import DigestMismatchError
from kubetune_operator.data.digest import model_digest
from kubetune_trainer.entrypoint import run_job

pytestmark = pytest.mark.slow


def _job(tmp_path: Path, model: Path, digest: str) -> Path:
    data = write_rows(tmp_path / "rows.jsonl", reverse_task_rows(40))
    spec = letter_task_spec(
        str(model),
        str(data),
        str(tmp_path / "out"),
        prompt="Reverse: {{ word }}\n",
        completion="{{ reversed }}",
    )
    spec["model"]["digest"] = digest
    spec["hyperparameters"].update(maxSteps=1, batchSize=4)
    return write_finetune_job(tmp_path / "job.yaml", "pinned", spec)


def test_a_model_whose_files_are_not_the_pinned_ones_is_refused_before_any_is_read(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    pinned = model_digest(tiny_model_dir)
    swapped = tmp_path / "model"
    shutil.copytree(tiny_model_dir, swapped)
    # Not even valid safetensors: had the trainer read the weights (or config) first, it would fail otherwise.
    (swapped / "model.safetensors").write_bytes(b"not the weights that were pinned")
    (swapped / "config.json").write_text("{")
    found = model_digest(swapped)

    with pytest.raises(DigestMismatchError) as refused:
        run_job(_job(tmp_path, swapped, pinned))
    message = str(refused.value)
    assert "spec.model.digest" in message and str(swapped) in message
    assert pinned in message and found in message
    assert not (tmp_path / "out").exists()  # no token cache, split files, checkpoint or export


def test_the_pinned_model_trains(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    result = run_job(_job(tmp_path, tiny_model_dir, model_digest(tiny_model_dir)))
    assert result is not None and result["progress"]["step"] == 1
    assert (tmp_path / "out" / "result.json").is_file()
