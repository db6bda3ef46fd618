"""The results table (base vs tuned per task and score) and the demo's gate, from the evaluator's
results.json (pure: the caller reads the file from S3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.table import Table


class DemoGateError(RuntimeError):
    """The tuned model is not clearly (CI of the delta above 0) better than its base on the task it was
    tuned for."""


@dataclass(frozen=True)
class ScoreRow:
    task: str
    score: str
    base: float | None
    tuned: float
    delta: float | None
    delta_low: float | None
    delta_high: float | None


def _value(entry: Mapping[str, Any] | None) -> float | None:
    if not entry or entry.get("value") is None:
        return None
    return float(entry["value"])


def score_rows(results: Mapping[str, Any]) -> list[ScoreRow]:
    """One row per task and score, in the evaluator's order."""
    rows = []
    for task, described in (results.get("tasks") or {}).items():
        for score, entry in (described.get("scores") or {}).items():
            tuned = _value(entry.get("model"))
            if tuned is None:
                continue
            delta = entry.get("delta") or {}
            rows.append(
                ScoreRow(
                    task=task,
                    score=score,
                    base=_value(entry.get("baseline")),
                    tuned=tuned,
                    delta=_value(delta),
                    delta_low=None if delta.get("low") is None else float(delta["low"]),
                    delta_high=None if delta.get("high") is None else float(delta["high"]),
                )
            )
    return rows


def check_gate(rows: list[ScoreRow], task: str, score: str) -> ScoreRow:
    """The row that proves the tuning worked: the paired 95% CI of tuned - base lies wholly above 0. Raises
    `DemoGateError` with the numbers otherwise."""
    found = [row for row in rows if row.task == task and row.score == score]
    if not found:
        raise DemoGateError(f"results.json has no {score} score for task {task!r}")
    row = found[0]
    if row.base is None or row.delta_low is None or not row.delta_low > 0:
        ci = "none" if row.delta_low is None else f"[{row.delta_low:+.3f}, {row.delta_high or 0.0:+.3f}]"
        raise DemoGateError(
            f"the tuned model is not clearly better than its base on task {task!r}: {score} tuned "
            f"{row.tuned:.3f} vs base {row.base if row.base is None else round(row.base, 3)}, "
            f"95% CI of the delta {ci}"
        )
    return row


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def results_table(rows: list[ScoreRow], verdict: str | None) -> Table:
    table = Table(title=f"Base vs tuned (verdict: {verdict or 'n/a'})")
    for column in ("task", "score", "base", "tuned", "delta", "95% CI of delta"):
        table.add_column(column, justify="left" if column in ("task", "score") else "right")
    for row in rows:
        ci = (
            "–"
            if row.delta_low is None or row.delta_high is None
            else f"[{row.delta_low:+.3f}, {row.delta_high:+.3f}]"
        )
        delta = "–" if row.delta is None else f"{row.delta:+.3f}"
        table.add_row(row.task, row.score, _fmt(row.base), _fmt(row.tuned), delta, ci)
    return table
