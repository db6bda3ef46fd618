"""`kubetune score`: score existing predictions with rouge-score / sacrebleu / exact match."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def score_command(
    predictions: Annotated[
        str,
        typer.Option(
            "--predictions", "-p", help="jsonl/json/csv/parquet with `prediction` and `reference(s)`."
        ),
    ],
    metrics: Annotated[
        str, typer.Option("--metrics", "-m", help="Comma-separated: rouge, bleu, exact_match.")
    ] = "rouge,bleu,exact_match",
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the 95% CI.")
    ] = 1000,
) -> None:
    """Score predictions against references; prints a table (or --json) with 95% CIs and signatures."""
    # deferred: the operator image's `kubetune` has no evaluator, and numpy (~1 s) would slow every other verb
    from kubetune_evaluator.errors import EvalInputError  # noqa: PLC0415
    from kubetune_evaluator.metrics.registry import REFERENCE_METRICS, parse_metric_names  # noqa: PLC0415
    from kubetune_evaluator.predictions import load_prediction_records  # noqa: PLC0415
    from kubetune_evaluator.score_predictions import score_prediction_records  # noqa: PLC0415

    try:
        names = parse_metric_names(metrics.split(","), allowed=REFERENCE_METRICS)
        records = load_prediction_records(predictions)
    except EvalInputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    result = score_prediction_records(records, names, resamples=bootstrap)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    # deferred: rich costs ~0.5 s that --json and every other `kubetune` verb skip
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=f"{result['samples']} samples from {predictions}")
    for column in ("score", "value", "95% CI"):
        table.add_column(column)
    for name, value in result["scores"].items():
        table.add_row(name, f"{value['value']:.4f}", f"[{value['low']:.4f}, {value['high']:.4f}]")
    console = Console()
    console.print(table)
    for metric, signature in result["signatures"].items():
        console.print(f"{metric}: {signature}", highlight=False, soft_wrap=True)
    console.print_json(json.dumps(result))
