"""`kubetune eval job.yaml`: run an EvalJob spec locally (the same code the evaluator pods run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def eval_command(
    manifest: Annotated[Path, typer.Argument(help="EvalJob YAML manifest.", exists=True, dir_okay=False)],
) -> None:
    """Score the model (and its baseline) of an EvalJob manifest locally; prints a results table."""
    typer.echo("kubetune eval: not implemented yet", err=True)
    raise typer.Exit(1)
