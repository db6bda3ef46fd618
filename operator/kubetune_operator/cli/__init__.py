"""The `kubetune` command line.

What lives here: one module per verb (`crds`, `digest`, `operator`, `train`, `eval`, `score`), each a thin
layer over the package that does the work (the API, the controller, the trainer, the evaluator). Each verb
imports its heavy dependencies (kopf, torch, rich) inside the command, marked `# deferred:`, so
`kubetune crds` stays fast and the operator image never needs torch.

What must not: the work itself (parsing, reconciling, training, scoring live in their packages), and any
import of the development tools.

`kubetune dev …` and `kubetune demo` come from the development tools (devtools/kubetune_devtools, installed by
`make setup` from a checkout, never shipped): they register themselves through the `kubetune.cli` entry-point
group, so nothing shipped imports them and an installed wheel simply has no such commands.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from kubetune_operator.cli import crds, digest, eval, operator, score, train

PLUGIN_GROUP = "kubetune.cli"

app = typer.Typer(
    name="kubetune",
    help="Kubernetes-native instruction fine-tuning and evaluation of LLMs.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("crds")(crds.crds_command)
app.command("digest")(digest.digest_command)
app.command("eval")(eval.eval_command)
app.command("score")(score.score_command)
app.command("operator")(operator.operator_command)
app.command("train")(train.train_command)


def _register_plugins(root: typer.Typer) -> None:
    """Each entry point names a `register(app)` function that adds its commands."""
    for entry_point in entry_points(group=PLUGIN_GROUP):
        entry_point.load()(root)


_register_plugins(app)


@app.callback()
def _root() -> None:
    """Kubernetes-native instruction fine-tuning and evaluation of LLMs."""


def main() -> None:
    app()
