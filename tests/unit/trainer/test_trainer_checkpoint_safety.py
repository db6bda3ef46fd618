"""Resume never unpickles: a checkpoint holding a crafted pickle is refused, and the pickle never runs; a
checkpoint whose files differ from what its manifest recorded is refused before any of them is read."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from kubetune_devtools.tiny_models import letter_task_spec, reverse_task_rows, write_finetune_job, write_rows
from kubetune_operator.api.contract import DigestMismatchError
from kubetune_operator.data.digest import file_digests, listing_digest
from kubetune_trainer.entrypoint import run_job
from kubetune_trainer.train_state import CheckpointFormatError

pytestmark = pytest.mark.slow


class _Payload:
    """Unpickling this runs a shell command: what a writer of checkpoints/ could plant."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """An output folder with one sealed checkpoint (step 2) and a finished result."""
    root = tmp_path_factory.mktemp("ckpt")
    data = write_rows(root / "rows.jsonl", reverse_task_rows(60))
    spec = letter_task_spec(
        str(tiny_model_dir),
        str(data),
        str(root / "out"),
        prompt="Reverse: {{ word }}\n",
        completion="{{ reversed }}",
        maxSteps=3,
        batchSize=4,
    )
    spec["checkpoint"] = {"everySteps": 2, "keep": 1}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBETUNE_METRICS_PORT", "0")
        assert run_job(write_finetune_job(root / "job.yaml", "ckpt", spec)) is not None
    return root


def _resumable_copy(trained: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the output without result.json, so run_job resumes from checkpoints/step-2."""
    out = tmp_path / "out"
    shutil.copytree(trained / "out", out)
    (out / "result.json").unlink()
    job = (trained / "job.yaml").read_text().replace(str(trained / "out"), str(out))
    path = tmp_path / "job.yaml"
    path.write_text(job)
    return out / "checkpoints" / "step-2", path


def _reseal(folder: Path) -> None:
    """Record the folder's files in its manifest, as a writer who can also rewrite manifest.json would."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"] = file_digests(folder, exclude=("manifest.json",))
    manifest["digest"] = listing_digest(manifest["sha256"])
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_checkpoint_holds_only_safetensors_and_json(trained: Path) -> None:
    folder = trained / "out" / "checkpoints" / "step-2"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "manifest.json",
        "model.safetensors",
        "optimizer.json",
        "optimizer.safetensors",
        "rng-0.json",
        "rng-0.safetensors",
        "scheduler.json",
        "train-state.json",
    ]
    assert load_file(str(folder / "optimizer.safetensors"))  # AdamW moments are there


@pytest.mark.parametrize("planted", ["optimizer.bin", "random_states_0.pkl", "optimizer.safetensors"])
def test_a_crafted_pickle_in_the_checkpoint_is_refused_and_never_runs(
    trained: Path, tmp_path: Path, planted: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    folder, job = _resumable_copy(trained, tmp_path)
    marker = tmp_path / "pwned"
    (folder / planted).write_bytes(pickle.dumps(_Payload(marker)))
    # Past the digests too (the manifest rewritten to match): the format check still refuses the pickle.
    _reseal(folder)

    with pytest.raises(CheckpointFormatError, match=planted.replace(".", r"\.")):
        run_job(job)
    assert not marker.exists()
    # The planted file really is armed: unpickling it (what torch.load(weights_only=False) does) runs it.
    pickle.loads((folder / planted).read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("tamper", ["changed", "added"])
def test_a_checkpoint_whose_files_differ_from_its_manifest_is_refused_not_trained_from_scratch(
    trained: Path, tmp_path: Path, tamper: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    folder, job = _resumable_copy(trained, tmp_path)
    recorded = json.loads((folder / "manifest.json").read_text())["digest"]
    if tamper == "changed":  # same size, one byte flipped: a swapped tensor
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[-1] ^= 1
        (folder / "model.safetensors").write_bytes(bytes(data))
    else:
        marker = tmp_path / "pwned"
        (folder / "random_states_0.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    found = listing_digest(file_digests(folder, exclude=("manifest.json",)))

    with pytest.raises(DigestMismatchError) as refused:
        run_job(job)
    assert recorded in str(refused.value) and found in str(refused.value)
    assert "model.safetensors was changed" in str(refused.value) or "random_states_0.pkl was added" in str(
        refused.value
    )
    # Neither resumed nor restarted from scratch: nothing trained, exported or deleted.
    assert not (folder.parent.parent / "result.json").exists()
    assert sorted(p.name for p in folder.parent.iterdir()) == ["step-2"]
    assert not (tmp_path / "pwned").exists()
