"""The trainer and evaluator images: one torch install under both, each with only its own package and the
API models, their pod entry points answering as uid 1000 on a read-only root, the trainer training the tiny
model from a manifest in a mounted volume, both within their committed sizes.

Building them cold costs minutes (torch's ~5.5 GB of wheels, docs/deploy.md "Images"); warm, with the
layers cached, a few seconds each.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from image_harness import Image, assert_within_size_limit, run_in_image

from kubetune_devtools.tiny_models import (
    build_tiny_model,
    letter_task_spec,
    reverse_task_rows,
    write_finetune_job,
    write_rows,
)

pytestmark = pytest.mark.e2e

# Imported in the image: every third-party package its code needs, then its own heaviest modules; prints
# whether the other workload's package or kopf could be imported (they must not be there).
IMPORT_PROBE = """
import importlib, importlib.util, os, sys
for name in sys.argv[1].split(","):
    importlib.import_module(name)
print(os.getuid(), *(importlib.util.find_spec(name) is not None for name in sys.argv[2].split(",")))
"""


def test_trainer_and_evaluator_share_all_but_their_code_layer(
    trainer_image: Image, evaluator_image: Image
) -> None:
    assert trainer_image.layers[:-1] == evaluator_image.layers[:-1]
    assert trainer_image.layers[-1] != evaluator_image.layers[-1]


@pytest.mark.parametrize(
    ("target", "imports", "absent"),
    [
        (
            "trainer",
            "torch,transformers,accelerate,peft,safetensors,pyarrow,kubetune_operator.data.pipeline",
            "kopf,kubetune_evaluator,kubetune_devtools,kubetune_operator.controller",
        ),
        (
            "evaluator",
            "torch,transformers,peft,rouge_score,sacrebleu,bert_score,httpx,kubetune_evaluator.runner",
            "kopf,kubetune_trainer,kubetune_operator.controller,kubetune_devtools",
        ),
    ],
)
def test_workload_image_imports_its_packages_as_uid_1000_and_nothing_else(
    target: str, imports: str, absent: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    image: Image = request.getfixturevalue(f"{target}_image")
    assert image.config["User"] == "1000:1000"
    # What the operator's pod specs run: `python -m <module>` (or `accelerate launch -m` for the trainer).
    assert image.config["Entrypoint"] == ["python", "-m", f"kubetune_{target}"]
    code = sorted(path.name for path in (image.rootfs / "opt" / "kubetune").iterdir())
    assert code == sorted(["kubetune_operator", f"kubetune_{target}"])
    # Of the base package only what the workloads share: the API models and contract, the data layer.
    shared = sorted(path.name for path in (image.rootfs / "opt" / "kubetune" / "kubetune_operator").iterdir())
    assert [name for name in shared if not name.startswith(("_", "py.typed"))] == ["api", "data"]
    result = run_in_image(image, ["python", "-c", IMPORT_PROBE, imports, absent], tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1000"] + ["False"] * len(absent.split(","))


@pytest.mark.parametrize("target", ["trainer", "evaluator"])
def test_workload_image_entry_point_answers_help(
    target: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    image: Image = request.getfixturevalue(f"{target}_image")
    result = run_in_image(image, [*image.config["Entrypoint"], "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"usage: python -m kubetune_{target}" in result.stdout
    assert "--config" in result.stdout


def test_trainer_image_has_the_accelerate_launcher(trainer_image: Image) -> None:
    # The operator starts trainer pods with `accelerate launch ... -m kubetune_trainer`.
    assert (trainer_image.rootfs / "opt" / "venv" / "bin" / "accelerate").is_file()


def test_trainer_image_trains_the_tiny_model_from_a_mounted_manifest(
    trainer_image: Image, tmp_path: Path
) -> None:
    # A pod's view: the manifest, the model and the data in a mounted volume, HOME and caches on /tmp.
    work = tmp_path / "work"
    work.mkdir()
    build_tiny_model(work / "model")
    write_rows(work / "data.jsonl", reverse_task_rows(40))
    spec = letter_task_spec(
        "/mnt/model",
        "/mnt/data.jsonl",
        "/mnt/out",
        prompt="Reverse: {{ word }}",
        completion=" {{ reversed }}",
    )
    spec["hyperparameters"]["epochs"] = 1
    write_finetune_job(work / "job.yaml", "image-tiny", spec)
    # The trainer runs as uid 1000: the volume must be writable to it, as an emptyDir or PVC would be.
    for path in [work, *work.rglob("*")]:
        os.chmod(path, 0o777 if path.is_dir() else 0o666)

    result = run_in_image(
        trainer_image,
        [*trainer_image.config["Entrypoint"], "--config", "/mnt/job.yaml"],
        tmp_path,
        timeout=600,
        mounts={"/mnt": work},  # /mnt: a mount point must exist in the read-only image
        env={"HOME": "/tmp", "TMPDIR": "/tmp", "XDG_CACHE_HOME": "/tmp/.cache"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    progress = json.loads((work / "out" / "result.json").read_text())["progress"]
    # 34 training rows (40 less the validation and test split) in batches of 16: 3 steps, all run.
    assert (progress["phase"], progress["step"], progress["totalSteps"]) == ("Succeeded", 3, 3)
    trained = (work / "out" / "model.safetensors").read_bytes()
    assert trained != (work / "model" / "model.safetensors").read_bytes()
    assert all(path.stat().st_uid == 1000 for path in (work / "out").rglob("*"))


@pytest.mark.parametrize("target", ["trainer", "evaluator"])
def test_workload_image_stays_within_its_committed_size(target: str, request: pytest.FixtureRequest) -> None:
    assert_within_size_limit(target, request.getfixturevalue(f"{target}_image"))
