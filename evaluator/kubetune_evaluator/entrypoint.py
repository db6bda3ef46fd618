"""Shared by `kubetune eval` and `python -m kubetune_evaluator`: manifest in, published results out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.live_progress import (
    PeerProgress,
    PlanProgress,
    ShardProgressWriter,
    peer_progress_uris,
    planned_samples,
    progress_uri,
    serve_status,
)
from kubetune_evaluator.outputs import TERMINATION_LOG, publish, write_termination_log
from kubetune_evaluator.progress import LogProgress, ProgressSink
from kubetune_evaluator.prometheus_metrics import EvalGauges
from kubetune_evaluator.runner import EvalOutcome, compute_shard, finish_eval, storage_of
from kubetune_evaluator.shard import WHOLE, Shard
from kubetune_evaluator.shard_exchange import (
    ShardIdentity,
    gather_shards,
    remove_shards,
    wait_seconds,
    write_shard,
)
from kubetune_operator.api import EvalJob, ManifestError, load_manifest

if TYPE_CHECKING:
    from kubetune_operator.api import EvalJobSpec

log = logging.getLogger("kubetune.evaluator")


@dataclass
class EvalRun:
    outcome: EvalOutcome
    uris: dict[str, str]


def load_eval_spec_title(manifest: Path) -> tuple[EvalJobSpec, str]:
    """The spec and a title (metadata.name) of an EvalJob manifest; errors name the field."""
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
    *,
    shard: Shard = WHOLE,
) -> EvalRun:
    """Load, validate, score, publish, and export gauges; bad input raises EvalInputError first.

    With a shard of several (rank 0 of a sharded EvalJob), the other ranks' results are merged in before
    anything is scored (see kubetune_evaluator.shard_exchange); the other ranks call `contribute_shard`.
    """
    spec, title = load_eval_spec_title(manifest)
    gauges = gauges or EvalGauges()
    storage = storage_of(spec)
    identity = ShardIdentity.of(spec)
    sink = progress or LogProgress()
    plan = PlanProgress(sink)  # counts the model work only: scoring is not in the plan's samples
    peers = None
    if shard.count > 1:
        peers = PeerProgress(peer_progress_uris(spec.output.uri, identity, shard), storage).start()
    if serve_metrics:
        serve_status(gauges.registry, lambda: plan.report(peers.total() if peers else 0))
    tasks, own = compute_shard(spec, shard, plan, planned=lambda t: plan.plan(planned_samples(spec, t)))
    if shard.count > 1:
        timeout = wait_seconds()
        own = gather_shards(spec.output.uri, identity, shard, own, storage, timeout_s=timeout)
    if peers is not None:
        peers.stop()
    outcome = finish_eval(spec, tasks, own, sink)
    uris = publish(outcome, spec.output.uri, title, storage)
    if shard.count > 1:
        remove_shards(spec.output.uri, identity, storage)
    gauges.record(outcome)
    if termination_log is not None:
        write_termination_log(outcome, uris["report.html"], termination_log)
    return EvalRun(outcome=outcome, uris=uris)


def contribute_shard(manifest: Path, shard: Shard, progress: ProgressSink | None = None) -> str:
    """A rank above 0 of a sharded EvalJob: compute the batches it owns and write them for rank 0."""
    spec, _ = load_eval_spec_title(manifest)
    identity, storage = ShardIdentity.of(spec), storage_of(spec)
    # Its samples done, for rank 0's /progress (the sum over shards).
    plan = PlanProgress(progress or LogProgress())
    writer = ShardProgressWriter(progress_uri(spec.output.uri, identity, shard), storage)
    plan.listeners.append(writer)
    _, own = compute_shard(spec, shard, plan, planned=lambda t: plan.plan(planned_samples(spec, t)))
    writer(plan.done, force=True)
    uri = write_shard(spec.output.uri, identity, shard, own, storage)
    log.info("shard %d of %d: results written to %s", shard.rank, shard.count, uri)
    return uri
