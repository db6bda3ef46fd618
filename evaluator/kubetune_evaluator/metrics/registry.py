"""Which metrics exist, which ones score generated text, and the dispatch for text metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.metrics.series import MetricOutput
from kubetune_operator.api.evaljob import Metric

KNOWN_METRICS: tuple[str, ...] = get_args(Metric)
"""The names spec.metrics accepts: the API's `Metric` is the one list."""
# Scored on (prediction, references) pairs without a model or an endpoint.
REFERENCE_METRICS = ("rouge", "bleu", "exact_match")


def parse_metric_names(names: Sequence[str], allowed: Sequence[str] = KNOWN_METRICS) -> list[str]:
    """Validate metric names (e.g. from `--metrics rouge,bleu`); unknown ones are an input error."""
    cleaned = [name.strip() for name in names if name.strip()]
    if not cleaned:
        raise EvalInputError("metrics: give at least one metric")
    unknown = [name for name in cleaned if name not in allowed]
    if unknown:
        raise EvalInputError(
            f"metrics: unknown metric(s) {', '.join(unknown)}; choose from {', '.join(allowed)}"
        )
    return list(dict.fromkeys(cleaned))


def score_references(
    metric: str, predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> MetricOutput:
    """rouge, bleu or exact_match."""
    # deferred: rouge-score, sacrebleu and pandas cost seconds that runs without text metrics skip
    from kubetune_evaluator.metrics import text_overlap  # noqa: PLC0415

    if metric == "rouge":
        return text_overlap.score_rouge(predictions, references)
    if metric == "bleu":
        return text_overlap.score_bleu(predictions, references)
    if metric == "exact_match":
        return text_overlap.score_exact_match(predictions, references)
    raise EvalInputError(f"metrics: {metric!r} is not a reference metric ({', '.join(REFERENCE_METRICS)})")
