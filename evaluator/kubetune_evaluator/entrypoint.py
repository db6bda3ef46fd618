"""Shared by `kubetune eval` and `python -m kubetune_evaluator`: manifest in, published results out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.outputs import TERMINATION_LOG
from kubetune_evaluator.progress import ProgressSink
from kubetune_evaluator.prometheus_metrics import EvalGauges
from kubetune_evaluator.runner import EvalOutcome

if TYPE_CHECKING:
    from kubetune_operator.api import EvalJobSpec


@dataclass
class EvalRun:
    outcome: EvalOutcome
    uris: dict[str, str]


def load_eval_spec_title(manifest: Path) -> tuple[EvalJobSpec, str]:
    """The spec and a title (metadata.name) of an EvalJob manifest; errors name the field."""
    from kubetune_operator.api import EvalJob, ManifestError, load_manifest

    try:
        job = load_manifest(manifest)
    except (ManifestError, OSError) as error:
        raise EvalInputError(f"{manifest}: {error}") from None
    if not isinstance(job, EvalJob):
        raise EvalInputError(f"{manifest}: kind is {job.kind}, expected EvalJob")
    return job.spec, str(job.metadata.get("name") or manifest.stem)


def evaluate_manifest(
    manifest: Path,
    progress: ProgressSink | None = None,
    serve_metrics: bool = False,
    termination_log: Path | None = TERMINATION_LOG,
    gauges: EvalGauges | None = None,
) -> EvalRun:
    """Load, validate, score, publish, and export gauges; bad input raises EvalInputError first."""
    from kubetune_evaluator.outputs import publish, write_termination_log
    from kubetune_evaluator.runner import run_eval, storage_of

    spec, title = load_eval_spec_title(manifest)
    gauges = gauges or EvalGauges()
    if serve_metrics:
        gauges.serve()
    outcome = run_eval(spec, progress)
    uris = publish(outcome, spec.output.uri, title, storage_of(spec))
    gauges.record(outcome)
    if termination_log is not None:
        write_termination_log(outcome, uris["report.html"], termination_log)
    return EvalRun(outcome=outcome, uris=uris)
