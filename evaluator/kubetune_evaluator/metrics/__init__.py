"""Scoring: every metric turns samples into `ScoreSeries` (per-sample values + corpus aggregation)."""

from __future__ import annotations

from kubetune_evaluator.metrics.series import MetricOutput, ScoreSeries

__all__ = ["MetricOutput", "ScoreSeries"]
