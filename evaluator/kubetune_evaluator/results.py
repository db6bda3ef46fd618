"""Assemble scores into results.json, the status summary and the termination message (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from kubetune_evaluator.metrics.bootstrap import bootstrap_ci, paired_delta_ci
from kubetune_evaluator.metrics.series import ScoreSeries
from kubetune_operator.api.contract import TERMINATION_MESSAGE_LIMIT, encode_result, result_fits

TERMINATION_LIMIT = TERMINATION_MESSAGE_LIMIT  # bytes Kubernetes keeps of /dev/termination-log
BOOTSTRAP_RESAMPLES = 1000


def score_entry(model: ScoreSeries, baseline: ScoreSeries | None, seed: int = 0) -> dict[str, Any]:
    """`{"model": CI, "baseline": CI, "delta": paired CI}` for one task and score."""
    entry: dict[str, Any] = {"model": bootstrap_ci(model, BOOTSTRAP_RESAMPLES, seed).as_dict()}
    if baseline is not None:
        entry["baseline"] = bootstrap_ci(baseline, BOOTSTRAP_RESAMPLES, seed).as_dict()
        entry["delta"] = paired_delta_ci(model, baseline, BOOTSTRAP_RESAMPLES, seed).as_dict()
    return entry


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def overall_scores(task_scores: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, float]]:
    """Macro average over the tasks on which each score was computed (every task weighs the same)."""
    sums: dict[str, dict[str, list[float]]] = {"model": {}, "baseline": {}, "delta": {}}
    for scores in task_scores.values():
        for name, entry in scores.items():
            for part, collected in sums.items():
                if part in entry and math.isfinite(float(entry[part]["value"])):
                    collected.setdefault(name, []).append(float(entry[part]["value"]))
    return {
        part: {name: sum(vals) / len(vals) for name, vals in values.items()} for part, values in sums.items()
    }


def status_results(
    overall: Mapping[str, Mapping[str, float]], signatures: Mapping[str, str]
) -> dict[str, Any]:
    """The EvalJob `status.results` shape (camelCase keys)."""
    return {
        "model": dict(overall.get("model", {})),
        "baseline": dict(overall.get("baseline", {})),
        "delta": dict(overall.get("delta", {})),
        "signatures": dict(signatures),
    }


def termination_message(
    results: Mapping[str, Any],
    verdict: str,
    reasons: list[str],
    report_uri: str,
) -> str:
    """The workload contract's result message for /dev/termination-log; reasons and signatures are
    trimmed to stay under the kubelet's 4096 bytes."""
    summary: dict[str, Any] = {
        "verdict": verdict,
        "verdictReasons": list(reasons),
        "reportUri": report_uri,
        "results": {k: v for k, v in results.items()},
    }

    def rounded(scores: Mapping[str, float]) -> dict[str, float | None]:
        return {k: _finite(round(v, 6)) for k, v in scores.items()}

    for part in ("model", "baseline", "delta"):
        summary["results"][part] = rounded(summary["results"].get(part, {}))
    while not result_fits(summary) and len(summary["verdictReasons"]) > 1:
        summary["verdictReasons"] = summary["verdictReasons"][:-1]
    if not result_fits(summary):
        summary["results"]["signatures"] = {}
    for reason_limit in (400, 120):
        if not result_fits(summary):
            summary["verdictReasons"] = [r[:reason_limit] for r in summary["verdictReasons"]]
    if not result_fits(summary):
        return encode_result({"verdict": verdict, "reportUri": report_uri})
    return encode_result(summary)
