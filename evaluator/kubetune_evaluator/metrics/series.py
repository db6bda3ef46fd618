"""The common shape of a score: per-sample values and a function that re-aggregates any resample.

Keeping the aggregation next to the values lets one bootstrap routine compute confidence intervals
for sample-mean metrics (ROUGE, exact match, BERTScore) and corpus metrics (BLEU) alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]


def nan_mean(values: FloatArray) -> float:
    """Mean over the samples that have a score (NaN marks e.g. a failed judge call); NaN if none do."""
    scored = values[~np.isnan(values)]
    return float(scored.mean()) if len(scored) else float("nan")


def _mean_of(values: FloatArray) -> Callable[[IndexArray], float]:
    def aggregate(indices: IndexArray) -> float:
        return nan_mean(values[indices])

    return aggregate


@dataclass(frozen=True)
class ScoreSeries:
    """One score over a set of samples.

    `per_sample` feeds distributions and worst-sample tables; `aggregate(indices)` recomputes the
    corpus score on a resample (indices into `per_sample`), which is what bootstrap CIs need.
    """

    per_sample: FloatArray
    corpus: float
    aggregate: Callable[[IndexArray], float]

    @classmethod
    def from_mean(cls, values: list[float] | FloatArray) -> ScoreSeries:
        array = np.asarray(values, dtype=np.float64)
        return cls(per_sample=array, corpus=nan_mean(array), aggregate=_mean_of(array))


@dataclass(frozen=True)
class MetricOutput:
    """What one metric (e.g. `rouge`) produced: named scores (rouge1, rougeL, ...) and a signature."""

    scores: dict[str, ScoreSeries]
    signature: str
    # Per-sample notes (e.g. judge failures); index-aligned with the samples, None where nothing to say.
    notes: list[str | None] = field(default_factory=list)
