"""`kubetune dev up|down|env|status`: the local stack (real control plane, MinIO, Prometheus, node agent)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Run the local development stack.", no_args_is_help=True)

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", help="State directory (default: $KUBETUNE_DEV_DIR or ~/.cache/kubetune/dev)."
    ),
]


@app.command("up")
def up_command(
    state_dir: StateDirOption = None,
    crds_dir: Annotated[
        Path | None,
        typer.Option("--crds-dir", help="Apply every CRD YAML found here (default: the checkout's crds/)."),
    ] = None,
) -> None:
    """Build missing binaries, start whatever is not running and wait until it is ready (idempotent)."""
    # deferred: the stack's modules (~0.6 s) would slow every `kubetune` start (this plugin loads then)
    from kubetune_devtools.devstack.binaries import REPO_ROOT, BinaryError  # noqa: PLC0415
    from kubetune_devtools.devstack.stack import up  # noqa: PLC0415

    try:
        up(state_dir, crds_dir or REPO_ROOT / "crds", report=typer.echo)
    except (BinaryError, RuntimeError) as error:
        typer.echo(f"dev up failed: {error}", err=True)
        raise typer.Exit(1) from None


@app.command("down")
def down_command(
    components: Annotated[
        list[str] | None, typer.Argument(help="Only these components (e.g. node-agent); default: all.")
    ] = None,
    state_dir: StateDirOption = None,
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete all state (etcd, S3 data, certs).")
    ] = False,
) -> None:
    """Stop what `dev up` started (found by its pid files); data is kept unless --purge."""
    # deferred: the stack's modules (~0.6 s) would slow every `kubetune` start (this plugin loads then)
    from kubetune_devtools.devstack.stack import down  # noqa: PLC0415

    try:
        down(state_dir, components, purge=purge, report=typer.echo)
    except ValueError as error:
        typer.echo(f"dev down: {error}", err=True)
        raise typer.Exit(2) from None


@app.command("env")
def env_command(state_dir: StateDirOption = None) -> None:
    """Print shell exports for the running stack: eval "$(kubetune dev env)"."""
    # deferred: the stack's modules (~0.6 s) would slow every `kubetune` start (this plugin loads then)
    from kubetune_devtools.devstack.stack import StackNotUpError, load_stack  # noqa: PLC0415

    try:
        stack = load_stack(state_dir)
    except StackNotUpError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    for name, value in stack.env().items():
        if name == "PATH":
            # Prepend to the PATH of the shell that evaluates this, not to this process's PATH.
            typer.echo(f'export PATH={shlex.quote(str(stack.tools_dir))}:"$PATH"')
        else:
            typer.echo(f"export {name}={shlex.quote(value)}")


@app.command("status")
def status_command(state_dir: StateDirOption = None) -> None:
    """Which components run, their pids and resident memory."""
    # deferred: the stack's modules (~0.6 s) would slow every `kubetune` start (this plugin loads then)
    from kubetune_devtools.devstack.stack import status  # noqa: PLC0415

    entries = status(state_dir)
    total = 0
    for entry in entries:
        total += entry.rss_bytes
        state = (
            f"running  pid {entry.pid:<8} rss {entry.rss_bytes / 2**20:7.1f} MiB"
            if entry.running
            else "stopped"
        )
        typer.echo(f"{entry.name:<24} {state}")
    typer.echo(f"{'total':<24} rss {total / 2**20:.1f} MiB")
    if not all(entry.running for entry in entries):
        raise typer.Exit(3)
