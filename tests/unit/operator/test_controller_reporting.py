"""Reporting path: rank 0's /progress JSON and the evaluator summary -> status; metrics tracker."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import REGISTRY

from kubetune_operator.api import CheckpointRef, EvalJobStatus
from kubetune_operator.controller.metrics import TRACKER
from kubetune_operator.controller.progress import checkpoint_status, fetch_progress, progress_status
from kubetune_operator.controller.reconcile_evaljob import report_result

PAYLOAD = {
    "step": 120,
    "totalSteps": 900,
    "epoch": 0.4,
    "percent": 13.3,
    "etaSeconds": 2400,
    "trainLoss": 1.92,
    "evalLoss": None,
    "tokensPerSecond": 5400.0,
    "updatedAt": "2026-01-01T00:00:00Z",
    "lastCheckpoint": {"uri": "s3://b/out/checkpoints/step-100", "step": 100},
    "unknownField": 1,
}


def test_progress_payload_becomes_status_progress_and_checkpoint() -> None:
    progress = progress_status(PAYLOAD)
    assert progress is not None
    # As written to status: camelCase, unreported (None) fields left out.
    assert progress.model_dump(mode="json", by_alias=True, exclude_none=True) == {
        "step": 120,
        "totalSteps": 900,
        "epoch": 0.4,
        "percent": 13.3,
        "etaSeconds": 2400,
        "trainLoss": 1.92,
        "tokensPerSecond": 5400.0,
        "updatedAt": "2026-01-01T00:00:00Z",
    }
    assert checkpoint_status(PAYLOAD) == CheckpointRef(uri="s3://b/out/checkpoints/step-100", step=100)
    assert progress_status({"step": -1}) is None
    assert checkpoint_status({"lastCheckpoint": {"uri": 3}}) is None


def test_fetch_progress_over_http_and_none_when_nobody_listens() -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(json.dumps(PAYLOAD).encode())

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert fetch_progress("127.0.0.1", server.server_address[1], 2.0) == PAYLOAD
    finally:
        server.shutdown()
    assert fetch_progress("127.0.0.1", server.server_address[1], 0.5) is None


def test_evaluator_summary_fields() -> None:
    summary = {
        "results": {"model": {"rougeL": 0.41}, "baseline": {"rougeL": 0.40}, "delta": {"rougeL": 0.01}},
        "verdict": "Passed",
        "verdictReasons": ["rougeL 0.41 >= 0.40"],
        "reportUri": "s3://evals/x/report.html",
        "other": 1,
    }
    status = EvalJobStatus()
    report_result(status, summary)
    assert status.verdict == "Passed"
    assert status.results is not None and status.results.model == {"rougeL": 0.41}
    assert status.report_uri == "s3://evals/x/report.html"
    for unusable in ({"verdict": "Maybe"}, None):
        untouched = EvalJobStatus()
        report_result(untouched, unusable)
        assert untouched.model_fields_set == set()


def test_tracker_counts_phases_restarts_and_gpu_seconds() -> None:
    def sample(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    gpu_before = sample(
        "kubetune_operator_gpu_seconds_total", {"kind": "FineTuneJob", "namespace": "unit-ns"}
    )
    TRACKER.observe("u1", "FineTuneJob", "unit-ns", phase="Running", restarts=0, gpus=4, at=100.0)
    TRACKER.observe("u2", "FineTuneJob", "unit-ns", phase="Running", restarts=0, gpus=0, at=100.0)
    TRACKER.observe("u1", "FineTuneJob", "unit-ns", phase="Restarting", restarts=1, gpus=4, at=110.0)
    labels = {"kind": "FineTuneJob", "namespace": "unit-ns"}
    assert sample("kubetune_operator_gpu_seconds_total", labels) - gpu_before == 40.0
    assert sample("kubetune_operator_restarts_total", labels) >= 1.0
    assert sample("kubetune_operator_jobs", {**labels, "phase": "Running"}) == 1.0
    assert sample("kubetune_operator_jobs", {**labels, "phase": "Restarting"}) == 1.0
    TRACKER.forget("u1")
    TRACKER.forget("u2")
    assert sample("kubetune_operator_jobs", {**labels, "phase": "Running"}) == 0.0
