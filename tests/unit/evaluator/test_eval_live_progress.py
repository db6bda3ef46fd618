"""Live progress of an evaluation: samples done of the plan, summed over shards, served on /progress."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune_evaluator.entrypoint import contribute_shard, evaluate_manifest
from kubetune_evaluator.live_progress import (
    PeerProgress,
    PlanProgress,
    ShardProgressWriter,
    peer_progress_uris,
    progress_uri,
    serve_status,
)
from kubetune_evaluator.progress import LogProgress
from kubetune_evaluator.prometheus_metrics import EvalGauges
from kubetune_evaluator.shard import Shard
from kubetune_evaluator.shard_exchange import ShardIdentity
from kubetune_operator.api import EvalJob

DATA = Path(__file__).parents[2] / "data" / "mmlu"


class _Recording:
    """PlanProgress, keeping each instance made, to read the counts after a run."""

    def __init__(self, plans: list[PlanProgress]) -> None:
        self.plans = plans

    def __call__(self, *args: Any, **kwargs: Any) -> PlanProgress:
        plan = PlanProgress(*args, **kwargs)
        self.plans.append(plan)
        return plan


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plan_progress_counts_samples_with_the_other_shards_and_an_eta() -> None:
    clock = _Clock()
    plan = PlanProgress(LogProgress(), clock=clock)
    plan.plan(120)
    plan.stage("model: multiple choice mmlu", 60)
    plan.advance(20)
    clock.now += 10.0
    report = plan.report(others_done=40)
    assert (report["samples"], report["totalSamples"], report["percent"]) == (60, 120, 50.0)
    # 60 samples in 10 s: the other 60 in 10 s more.
    assert report["etaSeconds"] == 10 and report["stage"] == "model: multiple choice mmlu"
    plan.advance(500)
    assert plan.report(others_done=40)["samples"] == 120  # never past the plan


def test_shards_write_their_count_at_most_every_interval_and_rank_0_adds_them_up(tmp_path: Path) -> None:
    identity = ShardIdentity("uid-1", 0, "sha256:x")
    output = str(tmp_path / "out")
    clock = _Clock()
    writers = {
        rank: ShardProgressWriter(progress_uri(output, identity, Shard(rank, 3)), None, 10.0, clock)
        for rank in (1, 2)
    }
    writers[1](5)
    writers[1](9)  # within the interval: not written
    writers[2](7)
    peers = PeerProgress(peer_progress_uris(output, identity, Shard(0, 3)), None)
    peers.refresh()
    assert peers.total() == 12
    clock.now += 10.0
    writers[1](9)
    writers[2](8, force=True)
    peers.refresh()
    assert peers.total() == 17


def test_progress_and_metrics_are_served_on_one_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "0")
    monkeypatch.setenv("POD_IP", "127.0.0.1")
    gauges = EvalGauges()
    gauges.passed.set(1.0)
    port = serve_status(gauges.registry, lambda: {"samples": 3, "totalSamples": 4})
    assert port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/progress", timeout=5) as response:
        assert response.headers["Content-Type"] == "application/json"
        assert json.loads(response.read()) == {"samples": 3, "totalSamples": 4}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert "kubetune_eval_verdict_passed 1.0" in response.read().decode()


@pytest.mark.slow
def test_a_sharded_run_reports_all_samples_of_both_systems(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "EvalJob",
        "metadata": {"name": "progress"},
        "spec": {
            "model": {"uri": str(tiny_model_dir)},
            "baseline": {"uri": str(tiny_model_dir)},
            "dataset": {"uri": str(DATA / "test.jsonl")},
            "tasks": [{"name": "mmlu", "benchmark": "mmlu"}],
            "metrics": ["accuracy"],
            "generation": {"batchSize": 4},
            "output": {"uri": str(tmp_path / "out")},
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(manifest))
    monkeypatch.setenv("KUBETUNE_JOB_UID", "uid-9")
    spec = EvalJob.model_validate(manifest).spec
    identity = ShardIdentity.of(spec)
    contribute_shard(path, Shard(1, 2))
    # Rank 1 wrote its count: batches 1, 2, 5, 6 of the 8 batches of 4 questions (30 in all: the last holds
    # 2), for the model and the baseline.
    written = json.loads(Path(progress_uri(spec.output.uri, identity, Shard(1, 2))).read_text())
    assert written == {"samples": 2 * 16}

    plans: list[PlanProgress] = []
    monkeypatch.setattr("kubetune_evaluator.entrypoint.PlanProgress", _Recording(plans))
    evaluate_manifest(path, termination_log=None, shard=Shard(0, 2))
    (plan,) = plans
    assert plan.total == 60 and plan.done == 60 - 32
