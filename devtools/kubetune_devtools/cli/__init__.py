"""`kubetune dev …` and `kubetune demo`: the checkout's commands, added to the `kubetune` CLI through the
`kubetune.cli` entry point declared in devtools/pyproject.toml.

What lives here: the two commands' argument handling only (`dev`, `demo`). What must not: the work
(`devstack/`, `demo/`) or anything imported at module level that costs start-up time: every `kubetune`
start loads this package, so the commands import the stack and the demo inside, marked `# deferred:`.
"""

from __future__ import annotations

import typer

from kubetune_devtools.cli import demo, dev


def register(app: typer.Typer) -> None:
    app.command("demo")(demo.demo_command)
    app.add_typer(dev.app, name="dev")
