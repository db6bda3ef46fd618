"""Publish an evaluation: samples.jsonl, results.json, report.html under output.uri, termination log."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubetune_evaluator.report import render_report
from kubetune_evaluator.results import termination_message
from kubetune_evaluator.sample_records import sample_records
from kubetune_operator.api import contract
from kubetune_operator.data.storage import join_uri, write_text

if TYPE_CHECKING:
    from kubetune_evaluator.runner import EvalOutcome
    from kubetune_operator.data.storage import StorageOptions

log = logging.getLogger("kubetune.evaluator")
TERMINATION_LOG = contract.TERMINATION_LOG


def _json_safe(value: Any) -> Any:
    """NaN (e.g. nothing judged) is not JSON: write null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def publish(
    outcome: EvalOutcome, output_uri: str, title: str, storage: StorageOptions | None = None
) -> dict[str, str]:
    """Write the three files; returns their URIs."""
    uris = {name: join_uri(output_uri, name) for name in ("samples.jsonl", "results.json", "report.html")}
    lines = "".join(
        json.dumps(_json_safe(r), ensure_ascii=False, allow_nan=False) + "\n" for r in sample_records(outcome)
    )
    write_text(uris["samples.jsonl"], lines, storage)
    results = dict(outcome.results, reportUri=uris["report.html"])
    write_text(uris["results.json"], json.dumps(_json_safe(results), indent=2, allow_nan=False), storage)
    write_text(uris["report.html"], render_report(outcome, title), storage)
    return uris


def write_termination_log(outcome: EvalOutcome, report_uri: str, path: Path = TERMINATION_LOG) -> bool:
    """The compact summary the operator copies into EvalJob status.

    Written only where the file already exists: Kubernetes (and the local node agent) mount it into
    the container; a local run must not create /dev/termination-log.
    """
    message = termination_message(outcome.results["summary"], outcome.verdict, outcome.reasons, report_uri)
    return contract.write_message(message, path)
