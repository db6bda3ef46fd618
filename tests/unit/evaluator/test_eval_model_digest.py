"""A model whose files are not the pinned ones is refused before any weights are read.

spec.model.digest (for a fineTuneJobRef: the FineTuneJob's status.output.digest, which only the operator
writes, passed by it) and spec.baseline.digest pin the files; the evaluator's loader compares them with the
digest of the files it downloaded (kubetune_operator.data.digest, the trainer's own) and fails with
DigestMismatch naming both.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, cast

import pytest

from kubetune_evaluator.runner import run_eval
from kubetune_operator.api import EvalJobSpec
from kubetune_operator.api.contract import DigestMismatchError
from kubetune_operator.controller import reasons
from kubetune_operator.controller.kube import Kube
from kubetune_operator.controller.reconcile_evaljob import resolve_model
from kubetune_operator.data.digest import model_digest

RECORDED = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def _spec(tmp_path: Path, model: Path, **extra: Any) -> EvalJobSpec:
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"question": "2+2?", "answer": "4"}) + "\n")
    return EvalJobSpec.model_validate(
        {
            "model": {"uri": str(model)},
            "dataset": {"uri": str(data), "split": "all"},
            "tasks": [{"name": "qa", "templates": [{"prompt": "Q: {question}", "completion": " {answer}"}]}],
            "metrics": ["exact_match"],
            "generation": {"maxNewTokens": 2},
            "output": {"uri": str(tmp_path / "out")},
            **extra,
        }
    )


def _swapped(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A copy of the model whose weights are not even safetensors: reading them would fail otherwise."""
    swapped = tmp_path / "swapped"
    shutil.copytree(tiny_model_dir, swapped)
    (swapped / "model.safetensors").write_bytes(b"not the pinned weights")
    return swapped


def test_a_model_with_other_files_than_pinned_is_refused_before_loading(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    swapped = _swapped(tiny_model_dir, tmp_path)
    spec = _spec(tmp_path, swapped)
    spec.model.digest = model_digest(tiny_model_dir)
    with pytest.raises(DigestMismatchError) as caught:
        run_eval(spec)
    message = str(caught.value)
    assert f"spec.model.digest ({swapped})" in message
    assert model_digest(tiny_model_dir) in message and model_digest(swapped) in message


def test_a_baseline_with_other_files_than_pinned_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    swapped = _swapped(tiny_model_dir, tmp_path)
    spec = _spec(
        tmp_path, tiny_model_dir, baseline={"uri": str(swapped), "digest": model_digest(tiny_model_dir)}
    )
    with pytest.raises(DigestMismatchError, match=r"spec\.baseline\.digest"):
        run_eval(spec)


def test_the_pinned_model_and_baseline_are_scored(tiny_model_dir: Path, tmp_path: Path) -> None:
    pinned = model_digest(tiny_model_dir)
    spec = _spec(tmp_path, tiny_model_dir, baseline={"uri": str(tiny_model_dir), "digest": pinned})
    spec.model.digest = pinned
    results = run_eval(spec).results
    assert results["model"]["digest"] == pinned and results["baseline"]["digest"] == pinned


class _OneFineTuneJob:
    """The one call resolve_model makes of the API (pure-function test, no cluster)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.body if (kind, name) == ("FineTuneJob", "tune") else None


def test_the_operator_passes_the_finetunejobs_recorded_digest(tmp_path: Path) -> None:
    spec = EvalJobSpec.model_validate(
        {
            "model": {"fineTuneJobRef": {"name": "tune"}},
            "dataset": {"uri": "s3://data/test.jsonl"},
            "output": {"uri": "s3://evals/x/"},
        }
    )
    body = {
        "spec": {"output": {"uri": "s3://models/tuned/"}},
        "status": {"phase": "Succeeded", "output": {"uri": "s3://models/tuned/", "digest": RECORDED}},
    }
    kube = cast(Kube, _OneFineTuneJob(body))
    assert resolve_model(kube, "team-a", spec) == ("s3://models/tuned/", RECORDED, None)
    running = cast(Kube, _OneFineTuneJob({**body, "status": {"phase": "Running"}}))
    uri, digest, waiting = resolve_model(running, "team-a", spec)
    assert (uri, digest) == (None, None) and waiting is not None and waiting.phase == "Pending"


def test_a_digest_pinned_beside_a_finetunejob_ref_must_be_the_one_it_recorded() -> None:
    body = {
        "spec": {"output": {"uri": "s3://models/tuned/"}},
        "status": {"phase": "Succeeded", "output": {"uri": "s3://models/tuned/", "digest": RECORDED}},
    }
    kube = cast(Kube, _OneFineTuneJob(body))

    def pinned(digest: str) -> EvalJobSpec:
        return EvalJobSpec.model_validate(
            {
                "model": {"fineTuneJobRef": {"name": "tune"}, "digest": digest},
                "dataset": {"uri": "s3://data/test.jsonl"},
                "output": {"uri": "s3://evals/x/"},
            }
        )

    assert resolve_model(kube, "team-a", pinned(RECORDED)) == ("s3://models/tuned/", RECORDED, None)
    uri, digest, failed = resolve_model(kube, "team-a", pinned(OTHER))
    assert (uri, digest) == (None, None) and failed is not None
    assert (failed.phase, failed.reason) == ("Failed", reasons.DIGEST_MISMATCH)
    assert OTHER in failed.message and RECORDED in failed.message and "tune" in failed.message
