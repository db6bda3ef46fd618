"""Bootstrap confidence intervals: one score, and the paired delta of two systems on the same samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kubetune_evaluator.metrics.series import IndexArray, ScoreSeries


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval (default 95%) around `value`."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def _resample_indices(n: int, resamples: int, seed: int) -> list[IndexArray]:
    rng = np.random.default_rng(seed)
    return list(rng.integers(0, n, size=(resamples, n), dtype=np.int64)) if n else []


def _interval(value: float, samples: list[float], confidence: float) -> Interval:
    if not samples:
        return Interval(value, value, value)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(np.asarray(samples), [tail, 100.0 - tail])
    return Interval(value=value, low=float(low), high=float(high))


def bootstrap_ci(
    series: ScoreSeries, resamples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> Interval:
    """Percentile interval of the corpus score over resamples of the samples."""
    samples = [series.aggregate(idx) for idx in _resample_indices(len(series.per_sample), resamples, seed)]
    return _interval(series.corpus, samples, confidence)


def paired_delta_ci(
    model: ScoreSeries,
    baseline: ScoreSeries,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """Interval of (model - baseline), resampling the SAME sample indices for both (paired bootstrap).

    Pairing removes the between-sample variance both systems share, so the interval is far tighter
    than the difference of two independent intervals.
    """
    if len(model.per_sample) != len(baseline.per_sample):
        raise ValueError(
            f"paired bootstrap needs the same samples: {len(model.per_sample)} vs {len(baseline.per_sample)}"
        )
    samples = [
        model.aggregate(idx) - baseline.aggregate(idx)
        for idx in _resample_indices(len(model.per_sample), resamples, seed)
    ]
    return _interval(model.corpus - baseline.corpus, samples, confidence)
