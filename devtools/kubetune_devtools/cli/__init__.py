"""`kubetune dev …` and `kubetune demo`: the checkout's commands, added to the `kubetune` CLI through the
`kubetune.cli` entry point declared in devtools/pyproject.toml."""

from __future__ import annotations

import typer

from kubetune_devtools.cli import demo, dev


def register(app: typer.Typer) -> None:
    app.command("demo")(demo.demo_command)
    app.add_typer(dev.app, name="dev")
