"""Pure evaluator logic: bootstrap CIs, verdicts, termination message, judge parsing, charts."""

from __future__ import annotations

import json
import math

import httpx
import numpy as np
import pytest

from kubetune_evaluator.judge.prompts import (
    VerdictParseError,
    combine_both_orders,
    parse_rating,
    parse_winner,
)
from kubetune_evaluator.metrics.bootstrap import bootstrap_ci, paired_delta_ci
from kubetune_evaluator.metrics.series import ScoreSeries
from kubetune_evaluator.prometheus_metrics import EvalGauges
from kubetune_evaluator.results import overall_scores, termination_message
from kubetune_evaluator.svg_charts import Bar, bar_chart, histogram, histogram_counts
from kubetune_evaluator.verdict import decide_verdict
from kubetune_operator.api import Thresholds


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_more_samples() -> None:
    rng = np.random.default_rng(1)
    small = ScoreSeries.from_mean(rng.uniform(size=20))
    large = ScoreSeries.from_mean(rng.uniform(size=2000))
    small_ci, large_ci = bootstrap_ci(small), bootstrap_ci(large)
    assert small_ci.low <= small.corpus <= small_ci.high
    assert (large_ci.high - large_ci.low) < (small_ci.high - small_ci.low) / 4


def test_paired_delta_is_tighter_than_independent_intervals() -> None:
    rng = np.random.default_rng(2)
    difficulty = rng.uniform(size=200)  # shared per-sample difficulty: the pairing removes it
    model = ScoreSeries.from_mean(np.clip(difficulty + 0.05, 0, 1))
    baseline = ScoreSeries.from_mean(difficulty)
    delta = paired_delta_ci(model, baseline)
    assert delta.value == pytest.approx(model.corpus - baseline.corpus)
    assert delta.low > 0  # a consistent +0.05 gain is significant when paired
    model_ci, base_ci = bootstrap_ci(model), bootstrap_ci(baseline)
    assert model_ci.low < base_ci.high  # ...while the unpaired intervals overlap


def test_paired_delta_needs_the_same_samples() -> None:
    with pytest.raises(ValueError, match="same samples"):
        paired_delta_ci(ScoreSeries.from_mean([1.0, 0.0]), ScoreSeries.from_mean([1.0]))


def test_nan_samples_are_left_out_of_the_mean() -> None:
    series = ScoreSeries.from_mean([8.0, math.nan, 6.0])
    assert series.corpus == pytest.approx(7.0)
    assert math.isnan(ScoreSeries.from_mean([math.nan]).corpus)


def _entry(model: float, baseline: float | None = None) -> dict[str, dict[str, float]]:
    entry = {"model": {"value": model, "low": model - 0.01, "high": model + 0.01}}
    if baseline is not None:
        entry["baseline"] = {"value": baseline, "low": baseline, "high": baseline}
        entry["delta"] = {
            "value": model - baseline,
            "low": model - baseline - 0.01,
            "high": model - baseline + 0.01,
        }
    return entry


def test_verdict_minimums_and_max_regression() -> None:
    thresholds = Thresholds.model_validate({"rougeL": 0.4, "maxRegression": 0.05})
    scores = {
        "tuned": {"rougeL": _entry(0.62, 0.30)},
        "general": {"rougeL": _entry(0.50, 0.60), "accuracy": _entry(0.59, 0.60)},
    }
    verdict = decide_verdict(scores, thresholds)
    assert verdict.verdict == "Failed"
    assert len(verdict.reasons) == 1  # accuracy dropped 1.7% (< 5%): allowed
    assert "general/rougeL" in verdict.reasons[0] and "16.7% regression" in verdict.reasons[0]

    scores["general"]["rougeL"] = _entry(0.59, 0.60)
    assert decide_verdict(scores, thresholds).verdict == "Passed"
    low = {"tuned": {"rougeL": _entry(0.39)}}
    failed = decide_verdict(low, thresholds)
    assert failed.verdict == "Failed" and "below the minimum 0.4" in failed.reasons[0]


def test_verdict_nan_score_fails_its_minimum() -> None:
    thresholds = Thresholds.model_validate({"judge": 5.0})
    verdict = decide_verdict({"chat": {"judgeScore": _entry(math.nan)}}, thresholds)
    assert verdict.verdict == "Failed"


def test_overall_is_the_macro_average_over_tasks() -> None:
    overall = overall_scores({"a": {"rougeL": _entry(0.2, 0.1)}, "b": {"rougeL": _entry(0.6, 0.5)}})
    assert overall["model"]["rougeL"] == pytest.approx(0.4)
    assert overall["delta"]["rougeL"] == pytest.approx(0.1)


def test_termination_message_stays_under_4_kib() -> None:
    results = {
        "model": {f"score{i}": 0.123456789 for i in range(40)},
        "baseline": {f"score{i}": 0.1 for i in range(40)},
        "delta": {f"score{i}": math.nan for i in range(40)},
        "signatures": {f"metric{i}": "x" * 200 for i in range(6)},
    }
    reasons = [f"task{i}/rougeL: 0.1 is below the minimum 0.4 " + "y" * 300 for i in range(30)]
    message = termination_message(results, "Failed", reasons, "s3://evals/x/report.html")
    assert len(message.encode()) <= 4096
    parsed = json.loads(message)["result"]
    assert parsed["verdict"] == "Failed" and parsed["verdictReasons"]
    assert parsed["results"]["delta"]["score0"] is None  # NaN is written as null


@pytest.mark.parametrize(
    ("reply", "rating"),
    [('{"rating": 7}', 7.0), ("Rating: [[3]]", 3.0), ('sure! {"rating": 10} done', 10.0)],
)
def test_parse_rating(reply: str, rating: float) -> None:
    assert parse_rating(reply) == rating


@pytest.mark.parametrize("reply", ["no idea", '{"rating": 11}', '{"rating": "good"}', "{not json"])
def test_parse_rating_rejects(reply: str) -> None:
    with pytest.raises(VerdictParseError):
        parse_rating(reply)


def test_parse_winner() -> None:
    assert parse_winner('{"winner": "A"}') == "A"
    assert parse_winner("[[C]]") == "tie"
    assert parse_winner('{"winner": "Tie"}') == "tie"
    with pytest.raises(VerdictParseError):
        parse_winner('{"winner": "both"}')


def test_both_orders_disagreement_is_a_tie() -> None:
    assert combine_both_orders("A", "B") == 1.0  # model first as A, then as B: won both
    assert combine_both_orders("B", "A") == 0.0
    assert combine_both_orders("A", "A") == 0.5  # judge always prefers position A: position bias
    assert combine_both_orders("tie", "B") == 0.5


def test_svg_charts_are_inline_and_escaped() -> None:
    svg = bar_chart(
        [Bar("t<1> / rougeL", 0.5, 0.4, 0.6, 0.3), Bar("t / bleu", 25.0, 20.0, 30.0, None, 100.0)]
    )
    assert svg.startswith("<svg") and "t&lt;1&gt;" in svg and "<script" not in svg
    assert histogram_counts([0.0, 0.05, 0.95, 1.0, math.nan], 1.0, 10) == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert "<rect" in histogram("x", [0.1, 0.9], [0.5])


def test_gauges_are_served_over_http(monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    monkeypatch.setenv("POD_IP", "127.0.0.1")
    gauges = EvalGauges()
    gauges.score.labels("rating", "rougeL", "model").set(0.625)
    port = gauges.serve()
    assert port
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'kubetune_eval_score{score="rougeL",system="model",task="rating"} 0.625' in body
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "off")
    assert EvalGauges().serve() is None
