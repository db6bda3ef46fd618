"""Score existing predictions (what `kubetune score` runs): values, bootstrap CIs and signatures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubetune_evaluator.metrics.bootstrap import bootstrap_ci
from kubetune_evaluator.metrics.registry import score_references
from kubetune_evaluator.predictions import PredictionRecord


def score_prediction_records(
    records: Sequence[PredictionRecord], metrics: Sequence[str], resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """`{"samples": n, "scores": {name: {value, low, high}}, "signatures": {metric: signature}}`."""
    predictions = [record.prediction for record in records]
    references = [list(record.references) for record in records]
    scores: dict[str, dict[str, float]] = {}
    signatures: dict[str, str] = {}
    for metric in metrics:
        output = score_references(metric, predictions, references)
        signatures[metric] = output.signature
        for name, series in output.scores.items():
            scores[name] = bootstrap_ci(series, resamples=resamples, seed=seed).as_dict()
    return {"samples": len(records), "scores": scores, "signatures": signatures}
