"""Shared by `kubetune eval` and `python -m kubetune_evaluator`: manifest in, published results out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.progress import ProgressSink
from kubetune_evaluator.runner import EvalOutcome


@dataclass
class EvalRun:
    outcome: EvalOutcome
    uris: dict[str, str]


def load_eval_spec_title(manifest: Path) -> tuple[object, str]:
    from kubetune_operator.api import EvalJob, ManifestError, load_manifest

    try:
        job = load_manifest(manifest)
    except ManifestError as error:
        raise EvalInputError(f"{manifest}: {error}") from None
    except OSError as error:
        raise EvalInputError(f"{manifest}: {error}") from None
    if not isinstance(job, EvalJob):
        raise EvalInputError(f"{manifest}: kind is {job.kind}, expected EvalJob")
    title = str(job.metadata.get("name") or manifest.stem)
    return job.spec, title


def evaluate_manifest(
    manifest: Path,
    progress: ProgressSink | None = None,
    serve_metrics: bool = False,
    termination_log: bool = True,
) -> EvalRun:
    """Load, validate, score, publish, and export gauges; bad input raises EvalInputError first."""
    from kubetune_evaluator.outputs import publish, write_termination_log
    from kubetune_evaluator.prometheus_metrics import EvalGauges
    from kubetune_evaluator.runner import _storage, run_eval
    from kubetune_operator.api import EvalJobSpec

    spec, title = load_eval_spec_title(manifest)
    assert isinstance(spec, EvalJobSpec)
    gauges = EvalGauges()
    if serve_metrics:
        gauges.serve()
    outcome = run_eval(spec, progress)
    uris = publish(outcome, spec.output.uri, title, _storage(spec))
    gauges.record(outcome)
    if termination_log:
        write_termination_log(outcome, uris["report.html"])
    return EvalRun(outcome=outcome, uris=uris)
