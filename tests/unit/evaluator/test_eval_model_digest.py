"""A model whose files changed since its FineTuneJob wrote them is refused before anything is scored.

The operator passes the FineTuneJob's status.output.digest (which only it writes) as spec.model.digest;
the evaluator compares it with the digest of the files it downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.model_loading import LoadedModel
from kubetune_evaluator.runner import run_eval
from kubetune_operator.api import EvalJobSpec
from kubetune_operator.controller.kube import Kube
from kubetune_operator.controller.reconcile_evaljob import resolve_model

RECORDED = "sha256:" + "a" * 64
TAMPERED = "sha256:" + "b" * 64


def _spec(tmp_path: Path, **model: Any) -> EvalJobSpec:
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"question": "2+2?", "answer": "4"}) + "\n")
    return EvalJobSpec.model_validate(
        {
            "model": {"uri": str(tmp_path / "model"), **model},
            "dataset": {"uri": str(data), "split": "all"},
            "tasks": [{"name": "qa", "templates": [{"prompt": "Q: {question}", "completion": " {answer}"}]}],
            "metrics": ["exact_match"],
            "output": {"uri": str(tmp_path / "out")},
        }
    )


def _tampered_model(uri: str, **_: Any) -> LoadedModel:
    # No generation may follow: model and tokenizer are deliberately unusable.
    return LoadedModel(model=None, tokenizer=None, uri=uri, digest=TAMPERED, adapter=False)


def test_a_model_with_other_files_than_recorded_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError) as caught:
        run_eval(_spec(tmp_path, digest=RECORDED), load=_tampered_model)
    assert TAMPERED in str(caught.value) and RECORDED in str(caught.value)
    assert not (tmp_path / "out").exists()


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
