"""`kubetune demo`: fine-tune and evaluate end to end on the local stack (docs/demo.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from kubetune_devtools.demo.assets import DemoSetupError
from kubetune_devtools.demo.plan import DemoSize

ModelChoice = Literal["tiny", "smollm2"]


def demo_command(
    *,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Base model: `tiny` (a 4M-parameter Llama built on the spot, minutes on a CPU) or `smollm2` "
            "(SmolLM2-135M-Instruct from the `demo-large` extra; much slower).",
        ),
    ] = "tiny",
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="Leave everything running (stack, operator, jobs) to explore with kubectl. Default: remove "
            "the Helm release and demo namespaces, and stop the stack if the demo started it.",
        ),
    ] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", help="Local copies of report.html, results.json, jobs.yaml."),
    ] = None,
    rows: Annotated[int, typer.Option("--rows", min=40, help="Dataset rows to use.")] = 368,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")] = 12,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the jobs.")] = 900,
) -> None:
    """Fine-tune a base model on a 2-node FineTuneJob and score it against its base with an EvalJob."""
    # deferred: rich and the Kubernetes client (~1.9 s) would slow every `kubetune` start (loads this plugin)
    from rich.console import Console  # noqa: PLC0415

    from kubetune_devtools.demo.cluster import DemoClusterError  # noqa: PLC0415
    from kubetune_devtools.demo.flow import DemoGateError, DemoJobError, DemoOptions, run_demo  # noqa: PLC0415

    if model not in ("tiny", "smollm2"):
        typer.echo(f"--model: expected `tiny` or `smollm2`, got {model!r}", err=True)
        raise typer.Exit(2)
    console = Console()
    chosen: ModelChoice = "tiny" if model == "tiny" else "smollm2"
    options = DemoOptions(
        model=chosen, keep=keep, size=DemoSize(rows=rows, epochs=epochs), timeout_seconds=timeout
    )
    if output_dir is not None:
        options = DemoOptions(**{**options.__dict__, "output_dir": output_dir})
    try:
        outcome = run_demo(options, console)
    except (DemoGateError, DemoJobError, DemoClusterError, DemoSetupError) as error:
        console.print(f"[bold red]demo failed:[/bold red] {error}")
        raise typer.Exit(1) from None
    gate = outcome.gate
    console.print(
        f"[bold green]tuned beats base[/bold green] on `{gate.task}`: {gate.score} {gate.base:.3f} -> "
        f"{gate.tuned:.3f}; demo took {outcome.seconds:.0f}s"
    )
