"""`maxRegression` counts a drop only when the paired delta CI says the model is worse (docs/evaluator.md)."""

from __future__ import annotations

import math
from typing import Any

from kubetune_evaluator.verdict import decide_verdict
from kubetune_operator.api import Thresholds

THRESHOLDS = Thresholds.model_validate({"maxRegression": 0.05})


def _scores(name: str, model: float, baseline: float, low: float, high: float) -> dict[str, Any]:
    entry = {
        "model": {"value": model},
        "baseline": {"value": baseline},
        "delta": {"value": model - baseline, "low": low, "high": high},
    }
    return {"general": {name: entry}}


def test_a_drop_whose_ci_lies_below_zero_fails() -> None:
    verdict = decide_verdict(_scores("rougeL", 0.15, 0.22, -0.12, -0.02), THRESHOLDS)
    assert verdict.verdict == "Failed"
    assert verdict.reasons[0].startswith("general/rougeL: 0.1500 vs baseline 0.2200 is a 31.8% regression")


def test_a_drop_the_ci_cannot_tell_from_noise_passes_with_a_note() -> None:
    verdict = decide_verdict(_scores("rougeL", 0.20, 0.22, -0.06, +0.01), THRESHOLDS)
    assert verdict.verdict == "Passed"
    assert verdict.reasons[0] == "all 1 threshold checks passed"
    assert "9.1% regression" in verdict.reasons[1] and "not counted" in verdict.reasons[1]


def test_lower_is_better_scores_need_the_ci_above_zero() -> None:
    rise_confirmed = _scores("bitsPerByte", 1.20, 1.10, +0.05, +0.15)
    assert decide_verdict(rise_confirmed, THRESHOLDS).verdict == "Failed"
    rise_in_noise = _scores("bitsPerByte", 1.20, 1.10, -0.01, +0.2)
    assert decide_verdict(rise_in_noise, THRESHOLDS).verdict == "Passed"


def test_without_a_ci_the_point_estimate_decides() -> None:
    verdict = decide_verdict(_scores("rougeL", 0.15, 0.22, math.nan, math.nan), THRESHOLDS)
    assert verdict.verdict == "Failed"
