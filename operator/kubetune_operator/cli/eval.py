"""`kubetune eval job.yaml`: run an EvalJob spec locally (the same code the evaluator pods run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kubetune_operator.api.contract import WorkloadError


class _RichProgress:
    """Adapts a rich Progress to the evaluator's ProgressSink (one bar per stage)."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress
        self._task: Any = None

    def stage(self, description: str, total: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=self._progress.tasks[-1].total)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)


def eval_command(
    manifest: Annotated[Path, typer.Argument(help="EvalJob YAML manifest.", dir_okay=False)],
) -> None:
    """Score the model (and its baseline) of an EvalJob manifest locally; prints a results table."""
    # deferred: rich (~0.5 s) and the evaluator (torch, seconds) would slow every other `kubetune` verb
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from kubetune_evaluator.entrypoint import evaluate_manifest  # noqa: PLC0415

    console = Console()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            run = evaluate_manifest(manifest, _RichProgress(progress), termination_log=None)
    except WorkloadError as error:  # bad input (InvalidSpec), S3 not answering (StorageUnreachable), ...
        typer.echo(f"error ({error.reason.value}): {error}", err=True)
        raise typer.Exit(2) from None
    outcome = run.outcome
    has_baseline = outcome.baseline is not None
    table = Table(title=f"{manifest.name}: {outcome.verdict}")
    for column in (
        "task",
        "score",
        "model",
        "95% CI",
        *(("baseline", "baseline 95% CI", "delta", "delta 95% CI") if has_baseline else ()),
    ):
        table.add_column(column)
    for task, scores in outcome.task_scores.items():
        for name, entry in scores.items():
            model = entry["model"]
            cells = [task, name, f"{model['value']:.4f}", f"[{model['low']:.4f}, {model['high']:.4f}]"]
            if has_baseline:
                base, delta = entry.get("baseline"), entry.get("delta")
                cells += (
                    [
                        f"{base['value']:.4f}",
                        f"[{base['low']:.4f}, {base['high']:.4f}]",
                        f"{delta['value']:+.4f}",
                        f"[{delta['low']:+.4f}, {delta['high']:+.4f}]",
                    ]
                    if base and delta
                    else ["", "", "", ""]
                )
            table.add_row(*cells)
    console.print(table)
    for reason in outcome.reasons:
        console.print(f"- {reason}", highlight=False, soft_wrap=True)
    for name, uri in run.uris.items():
        console.print(f"{name}: {uri}", highlight=False, soft_wrap=True)
