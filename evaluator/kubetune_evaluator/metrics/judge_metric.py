"""The `judge` metric: LLM-as-a-judge scores as ScoreSeries (failed samples are NaN plus a note)."""

from __future__ import annotations

from collections.abc import Sequence

from kubetune_evaluator.judge.client import JudgeItem, JudgeSettings, compare_answers, grade_answers
from kubetune_evaluator.judge.prompts import JudgeOutcome
from kubetune_evaluator.metrics.series import MetricOutput, ScoreSeries


def judge_signature(settings: JudgeSettings, mode: str) -> str:
    return (
        f"judge|model:{settings.model}|mode:{mode}|temperature:0|scale:1-10|attempts:{settings.max_attempts}"
    )


def _as_output(outcomes: Sequence[JudgeOutcome], name: str, signature: str) -> MetricOutput:
    values = [outcome.score if outcome.score is not None else float("nan") for outcome in outcomes]
    return MetricOutput(
        scores={name: ScoreSeries.from_mean(values)},
        signature=signature,
        notes=[outcome.error for outcome in outcomes],
    )


def score_judge_single(
    settings: JudgeSettings, prompts: Sequence[str], references: Sequence[str], predictions: Sequence[str]
) -> MetricOutput:
    """`judgeScore`: mean 1..10 rating over the samples the judge could grade."""
    items = [
        JudgeItem(prompt=p, reference=r, answer=a)
        for p, r, a in zip(prompts, references, predictions, strict=True)
    ]
    return _as_output(grade_answers(settings, items), "judgeScore", judge_signature(settings, "single"))


def score_judge_pairwise(
    settings: JudgeSettings,
    prompts: Sequence[str],
    references: Sequence[str],
    predictions: Sequence[str],
    baseline_predictions: Sequence[str],
) -> MetricOutput:
    """`judgeWinRate`: model vs baseline, both orders, disagreement = tie (1 win, 0.5 tie, 0 loss)."""
    items = [
        JudgeItem(prompt=p, reference=r, answer=a, baseline_answer=b)
        for p, r, a, b in zip(prompts, references, predictions, baseline_predictions, strict=True)
    ]
    return _as_output(
        compare_answers(settings, items), "judgeWinRate", judge_signature(settings, "pairwise-both-orders")
    )
