"""`kubetune train [--dry-run] job.yaml`: run a FineTuneJob locally with the code the trainer pods run.

torch and transformers are imported inside the command (the operator image has neither).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from kubetune_operator.api.contract import WorkloadError
from kubetune_operator.api.logs import configure_logging


def _gib(value: int) -> str:
    return f"{value / 1024**3:.1f}"


def _print_memory(console: Any, memory: dict[str, Any]) -> None:
    # deferred: rich (~0.5 s) would slow every other `kubetune` verb
    from rich.table import Table  # noqa: PLC0415

    if "error" in memory:
        console.print(f"[bold]Memory estimate[/]: none ({memory['error']})")
        return
    title = (
        f"Memory per GPU (GiB): {memory['parameters'] / 1e9:.2f}B parameters, {memory['worldSize']} "
        f"process(es), batchSize {memory['microBatch']} x maxSeqLength {memory['maxSeqLength']}, "
        f"gradientCheckpointing {str(memory['gradientCheckpointing']).lower()}"
    )
    table = Table(title=title)
    columns = ("strategy", "method", "weights", "gradients", "optimizer", "activations", "other", "total")
    for column in (*columns, "fits"):
        table.add_column(column, justify="left" if column in ("strategy", "method", "fits") else "right")
    for row in memory["rows"]:
        cells = [row["strategy"] + (" *" if row["job"] else ""), row["method"]]
        cells += [_gib(row[key]) for key in ("weights", "gradients", "optimizer", "activations", "overhead")]
        verdict = "yes" if row["fits"] else "no" if row.get("supported", True) else "n/a (unsupported)"
        cells += [_gib(row["total"]), verdict]
        table.add_row(*cells)
    console.print(table)
    console.print(
        "Recipe: bf16 compute; fp32 trainable weights, gradients and AdamW state (16 bytes per trainable "
        "parameter); LoRA: frozen fp32 base; QLoRA: 4-bit NF4 linears. other = bf16 weight copies, DDP "
        "buckets, FSDP-gathered layers, the loss's gradients, CUDA runtime. total = weights + optimizer + "
        "the larger of activations + other (start of backward) and gradients (optimizer step): backward "
        "frees the activations as it allocates the gradients (bench/gpu_memory_probe.py).",
        soft_wrap=True,
    )
    fitting = [f"{r['strategy']}/{r['method']}" for r in memory["rows"] if r["fits"]]
    auto = f" (distributed.strategy auto -> {memory['strategy']})" if memory["autoStrategy"] else ""
    console.print(
        f"Checked against {_gib(memory['deviceMemory'])} GiB per GPU: {memory['source']}. "
        f"Fits: {', '.join(fitting) or 'none'}. * = this job{auto}.",
        soft_wrap=True,
    )
    if not memory["fits"]:
        options = "; ".join(memory["options"]) or "none"
        console.print(f"[bold red]This job does not fit[/]; would fit: {options}", soft_wrap=True)


def _print_dry_run(report: dict[str, Any]) -> None:
    # deferred: rich (~0.5 s) would slow every other `kubetune` verb
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    console = Console()
    if "memory" in report:
        _print_memory(console, report["memory"])
    counts = Table(title="Examples per task and split")
    for column in ("task", "rows", "train", "in mixture", "validation", "test"):
        counts.add_column(column, justify="left" if column == "task" else "right")
    for task, c in report["counts"].items():
        counts.add_row(task, *(str(c[k]) for k in ("rows", "train", "mixture", "validation", "test")))
    console.print(counts)
    for part, info in report["splits"].items():
        t = info["truncation"]
        console.print(
            f"[bold]{part}[/]: {info['examples']} examples, {info['tokens']} tokens "
            f"({info['completionTokens']} carry loss); truncated prompts {t['promptTruncated']}, "
            f"truncated completions {t['completionTruncated']}"
        )
        if part == "train":
            peak = max((n for _, _, n in info["histogram"]), default=0) or 1
            for low, high, n in info["histogram"]:
                console.print(f"  {low:>6}-{high:<6} {'#' * round(40 * n / peak):<40} {n}")
    console.print("[bold]Preview[/] (tokens that carry loss are [reverse]highlighted[/]):")
    if not console.is_terminal:
        console.print("(without a terminal: loss-carrying tokens are between ⟦ and ⟧)")
    for item in report["preview"]:
        line = Text(f"task {item['task']} row {item['row'] + 1}: ")
        previous = False
        for piece, supervised in item["tokens"]:
            if not console.is_terminal and supervised != previous:
                line.append("⟦" if supervised else "⟧")
            line.append(piece, style="reverse green" if supervised else "dim")
            previous = supervised
        if not console.is_terminal and previous:
            line.append("⟧")
        console.print(line)


def train_command(
    manifest: Annotated[Path, typer.Argument(help="FineTuneJob YAML manifest.", exists=True, dir_okay=False)],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Show the memory estimate per GPU, data counts, lengths and loss masks; do not train.",
        ),
    ] = False,
    gpu_memory: Annotated[
        str | None,
        typer.Option(
            "--gpu-memory",
            help="With --dry-run: memory of each GPU, e.g. 24Gi (default: spec.resources.gpuMemory, this "
            "machine's GPU, else 80 GB).",
        ),
    ] = None,
) -> None:
    """Fine-tune locally from a FineTuneJob manifest (S3 or local paths); --dry-run previews the data and
    the memory per GPU."""
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) // 2)))
    # deferred: the trainer imports torch (seconds), and the operator image's `kubetune` has no trainer
    from kubetune_trainer.entrypoint import run_job  # noqa: PLC0415
    from kubetune_trainer.recipe import PreemptedError  # noqa: PLC0415

    configure_logging(json_lines=False)
    try:
        result = run_job(manifest, dry_run=dry_run, progress_bar=not dry_run, gpu_memory=gpu_memory)
    except WorkloadError as err:  # bad data (InvalidSpec), S3 not answering (StorageUnreachable), ...
        typer.secho(f"error ({err.reason.value}): {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    except PreemptedError as err:
        typer.secho(str(err), fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(143) from None
    if dry_run:
        assert result is not None
        _print_dry_run(result)
        return
    if result is not None:
        metrics = result.get("metrics", {})
        typer.echo(f"model: {result['output']['uri']}\ndigest: {result['output']['digest']}")
        typer.echo(
            "metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float))
        )
