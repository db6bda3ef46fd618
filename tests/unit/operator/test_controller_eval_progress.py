"""The operator reads an evaluator's /progress (served by the evaluator's own server) into EvalJob status."""

from __future__ import annotations

import pytest

from kubetune_evaluator.live_progress import serve_status
from kubetune_evaluator.prometheus_metrics import EvalGauges
from kubetune_operator.api import EvalProgress
from kubetune_operator.controller.eval_progress import (
    eval_progress_status,
    finished_progress,
    live_eval_progress,
)


def test_the_evaluators_progress_document_becomes_status_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    monkeypatch.setenv("POD_IP", "127.0.0.1")
    document = {
        "samples": 45,
        "totalSamples": 60,
        "percent": 75.0,
        "etaSeconds": 12,
        "stage": "baseline: multiple choice mmlu",
        "updatedAt": "2026-11-30T19:00:00Z",
        "somethingNewer": 1,  # unknown fields are dropped, not refused
    }
    port = serve_status(EvalGauges().registry, lambda: document)
    assert port is not None
    progress = live_eval_progress("127.0.0.1", port, 5.0)
    assert progress == EvalProgress(
        samples=45,
        total_samples=60,
        percent=75.0,
        eta_seconds=12,
        stage="baseline: multiple choice mmlu",
        updated_at="2026-11-30T19:00:00Z",
    )
    assert progress.model_dump(by_alias=True, exclude_none=True)["totalSamples"] == 60


def test_unusable_documents_and_the_final_progress() -> None:
    assert eval_progress_status({"samples": -1}) is None
    assert eval_progress_status({"percent": 250}) is None
    last = EvalProgress(samples=50, total_samples=60, percent=83.3, eta_seconds=4)
    done = finished_progress(last)
    assert done is not None
    assert (done.samples, done.percent, done.eta_seconds) == (60, 100.0, 0)
    assert finished_progress(None) is None
