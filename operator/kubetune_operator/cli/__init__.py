"""The `kubetune` command line.

Every verb lives in its own module and imports its heavy dependencies (kopf, torch) inside the
command, so `kubetune crds` stays fast and the operator image never needs torch.
"""

from __future__ import annotations

import typer

from kubetune_operator.cli import crds, demo, dev, eval, operator, score, train

app = typer.Typer(
    name="kubetune",
    help="Kubernetes-native instruction fine-tuning and evaluation of LLMs.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("crds")(crds.crds_command)
app.command("demo")(demo.demo_command)
app.add_typer(dev.app, name="dev")
app.command("eval")(eval.eval_command)
app.command("score")(score.score_command)
app.command("operator")(operator.operator_command)
app.command("train")(train.train_command)


@app.callback()
def _root() -> None:
    """Kubernetes-native instruction fine-tuning and evaluation of LLMs."""


def main() -> None:
    app()
