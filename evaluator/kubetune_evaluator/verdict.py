"""Thresholds -> verdict (`Passed`/`Failed`) and the reasons, from per-task scores (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubetune_operator.api import Thresholds

# Score name in results -> attribute of spec.thresholds holding its minimum.
MINIMUM_FIELDS = {
    "rouge1": "rouge1",
    "rouge2": "rouge2",
    "rougeL": "rouge_l",
    "rougeLsum": "rouge_lsum",
    "bleu": "bleu",
    "exactMatch": "exact_match",
    "accuracy": "accuracy",
    "bertscoreF1": "bertscore",
    "judgeScore": "judge",
}

# Scores where lower is better (perplexity): a regression is a rise above the baseline.
LOWER_IS_BETTER = frozenset({"wordPerplexity", "bytePerplexity", "bitsPerByte"})


@dataclass(frozen=True)
class Verdict:
    verdict: str  # Passed | Failed
    reasons: list[str]


def decide_verdict(
    task_scores: Mapping[str, Mapping[str, Mapping[str, Any]]], thresholds: Thresholds
) -> Verdict:
    """`task_scores[task][score] = {"model": {value,low,high}, "baseline": {...}?, "delta": {...}?}`.

    A minimum applies to every task on which its score was computed; `maxRegression` is the largest
    allowed drop below the baseline as a fraction of the baseline's score, on any task and score. A drop
    beyond it counts as a regression only when the paired bootstrap 95% CI of the delta says the model is
    worse (the whole interval below 0; above 0 for lower-is-better scores): a drop the CI cannot tell from
    sampling noise is reported in the reasons but does not fail the job. Without a delta CI the point
    estimate decides.
    """
    failures: list[str] = []
    notes: list[str] = []
    checks = 0
    for task, scores in task_scores.items():
        for name, entry in scores.items():
            model_value = float(entry["model"]["value"])
            field = MINIMUM_FIELDS.get(name)
            minimum = getattr(thresholds, field) if field else None
            if minimum is not None:
                checks += 1
                if not model_value >= minimum:  # NaN (nothing scored) fails too
                    failures.append(f"{task}/{name}: {model_value:.4f} is below the minimum {minimum}")
            baseline = entry.get("baseline")
            if thresholds.max_regression is not None and baseline is not None:
                checks += 1
                base_value = float(baseline["value"])
                sign = -1.0 if name in LOWER_IS_BETTER else 1.0
                drop = sign * (base_value - model_value) / base_value if base_value > 0 else 0.0
                if drop > thresholds.max_regression:
                    delta = entry.get("delta") or {}
                    low, high = float(delta.get("low", math.nan)), float(delta.get("high", math.nan))
                    described = (
                        f"{task}/{name}: {model_value:.4f} vs baseline {base_value:.4f} is a {drop:.1%} "
                        f"regression (max {thresholds.max_regression:.1%}; "
                        f"delta 95% CI [{low:.4f}, {high:.4f}])"
                    )
                    if _ci_confirms_worse(low, high, lower_is_better=sign < 0):
                        failures.append(described)
                    else:
                        notes.append(f"{described}: not counted, the CI includes no change")
    if failures:
        return Verdict("Failed", failures + notes)
    passed = f"all {checks} threshold checks passed" if checks else "no thresholds set"
    return Verdict("Passed", [passed, *notes])


def _ci_confirms_worse(low: float, high: float, *, lower_is_better: bool) -> bool:
    """True when the delta CI (model - baseline) lies wholly on the worse side of 0, or is unknown (NaN:
    no CI was computed, so the point estimate alone decides)."""
    if math.isnan(low) or math.isnan(high):
        return True
    return low > 0 if lower_is_better else high < 0
