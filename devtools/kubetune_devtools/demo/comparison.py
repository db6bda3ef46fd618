"""What fine-tuning did, per method: the target task's gain and the general task's change, with the paired
bootstrap 95% CIs from the evaluator's results.json and the EvalJob's verdict (pure: the caller reads the
files from S3).

A change counts only when its CI says so: a gain when the whole CI lies above 0, a loss when it lies below 0,
otherwise "no measurable change" (the evaluator's `maxRegression` verdict follows the same rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rich.table import Table

Direction = Literal["gain", "loss", "no measurable change"]
NOTHING = 0.01
"""A base score below this on the general task: the base could not do it (the random tiny model)."""


@dataclass(frozen=True)
class TaskChange:
    """One task's score for the base and the tuned model, and the paired delta with its 95% CI."""

    task: str
    score: str
    base: float
    tuned: float
    delta: float
    low: float
    high: float

    @property
    def direction(self) -> Direction:
        if self.low > 0:
            return "gain"
        if self.high < 0:
            return "loss"
        return "no measurable change"


@dataclass(frozen=True)
class MethodOutcome:
    """One FineTuneJob (`method`) and the EvalJob that scored it against its base."""

    method: str
    target: TaskChange
    general: TaskChange
    verdict: str | None
    verdict_reasons: list[str]
    loss_history: list[tuple[int, float]]


class MissingScoreError(KeyError):
    """results.json lacks a task or score the demo reads."""


def task_change(results: Mapping[str, Any], task: str, score: str) -> TaskChange:
    try:
        entry = results["tasks"][task]["scores"][score]
        delta = entry["delta"]
        return TaskChange(
            task=task,
            score=score,
            base=float(entry["baseline"]["value"]),
            tuned=float(entry["model"]["value"]),
            delta=float(delta["value"]),
            low=float(delta["low"]),
            high=float(delta["high"]),
        )
    except (KeyError, TypeError) as error:
        raise MissingScoreError(f"results.json has no baseline comparison of {task}/{score}") from error


def loss_history(trainer_result: Mapping[str, Any]) -> list[tuple[int, float]]:
    """(step, training loss) pairs from the trainer's result.json (`history`)."""
    return [(int(step), float(loss)) for step, loss in trainer_result.get("history") or []]


def _change(change: TaskChange) -> str:
    return (
        f"{change.base:.2f} → {change.tuned:.2f}  {change.delta:+.2f} [{change.low:+.2f}, {change.high:+.2f}]"
    )


def comparison_table(outcomes: Sequence[MethodOutcome]) -> Table:
    """One row per method: target gain, general change (base → tuned, delta [95% CI]) and the verdict."""
    first = outcomes[0]
    table = Table(title="What fine-tuning did (paired bootstrap 95% CI of tuned − base)")
    table.add_column("method")
    table.add_column(f"target: {first.target.task} {first.target.score}", justify="right")
    table.add_column(f"general: {first.general.task} {first.general.score}", justify="right")
    table.add_column("EvalJob verdict")
    for outcome in outcomes:
        table.add_row(
            outcome.method,
            f"{_change(outcome.target)}\n{outcome.target.direction}",
            f"{_change(outcome.general)}\n{outcome.general.direction}",
            outcome.verdict or "–",
        )
    return table


def explain(outcomes: Sequence[MethodOutcome], max_regression: float) -> list[str]:
    """Two or three sentences that say in words what the table shows."""
    lines = []
    for outcome in outcomes:
        target, general = outcome.target, outcome.general
        learned = {
            "gain": "learned it",
            "loss": "got worse at it",
            "no measurable change": "did not measurably learn it",
        }[target.direction]
        kept = {
            "gain": "even improved",
            "loss": "lost part of what it could do before (forgetting)",
            "no measurable change": "showed no loss its 95% CI can confirm",
        }[general.direction]
        if general.base < NOTHING and general.direction != "loss":
            kept = "could not do it before either (nothing to forget)"
        lines.append(
            f"{outcome.method}: on the trained task `{target.task}` the model {learned} ({target.score} "
            f"{target.base:.2f} → {target.tuned:.2f}); on `{general.task}`, never trained, it {kept} "
            f"({general.score} {general.base:.2f} → {general.tuned:.2f}, CI [{general.low:+.2f}, "
            f"{general.high:+.2f}])."
        )
    verdicts = "; ".join(f"{o.method}: {o.verdict or 'n/a'}{_failed_on(o)}" for o in outcomes)
    lines.append(
        f"The EvalJob's verdict fails a drop of more than {max_regression:.0%} of the base's score on any "
        f"task and score when the 95% CI of the delta lies below zero ({verdicts})."
    )
    return lines


def _failed_on(outcome: MethodOutcome) -> str:
    """` on summarize/rouge2, ...`: the task/score pairs a Failed verdict names (reasons start with them)."""
    if outcome.verdict != "Failed":
        return ""
    failed = [reason.split(":")[0] for reason in outcome.verdict_reasons if "not counted" not in reason]
    return f" on {', '.join(failed)}" if failed else ""
