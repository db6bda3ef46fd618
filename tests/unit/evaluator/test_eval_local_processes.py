"""processesPerNode > 1: the evaluator pod's command launches one evaluator process per local shard; a shard
that fails fails the attempt with its own reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune_evaluator.entrypoint import evaluate_manifest
from kubetune_evaluator.local_processes import child_environment, launcher_processes, supervise
from kubetune_evaluator.shard import Shard
from kubetune_operator.api import contract
from kubetune_operator.controller.observe import observe_attempt

DATA = Path(__file__).parents[2] / "data" / "mmlu"


def test_ranks_of_nodes_times_processes() -> None:
    env = {"KUBETUNE_NUM_NODES": "2", "KUBETUNE_PROCESSES_PER_NODE": "3", "KUBETUNE_NODE_RANK": "1"}
    assert launcher_processes(env) == 3  # the pod's own command: it launches
    children = [child_environment(env, local, 3) for local in range(3)]
    assert launcher_processes(children[0]) == 0  # a launched process evaluates
    assert [Shard.from_env(child) for child in children] == [Shard(3, 6), Shard(4, 6), Shard(5, 6)]
    assert all(int(child["OMP_NUM_THREADS"]) >= 1 for child in children)
    assert launcher_processes({}) == 0 and Shard.from_env({}) == Shard(0, 1)


def _python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_the_first_failure_stops_the_others_and_is_the_pods_exit_code() -> None:
    sleeper = _python("import time; time.sleep(60)")
    start = time.monotonic()
    assert supervise([sleeper, _python("raise SystemExit(3)")]) == 3
    assert time.monotonic() - start < 30 and sleeper.poll() is not None
    assert supervise([_python("pass"), _python("import time; time.sleep(0.5)")]) == 0


@pytest.mark.slow
def test_two_processes_in_one_pod_publish_the_numbers_of_one(tiny_model_dir: Path, tmp_path: Path) -> None:
    def manifest(output: str) -> Path:
        path = tmp_path / f"{output}.yaml"
        document = {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "EvalJob",
            "metadata": {"name": "ppn"},
            "spec": {
                "model": {"uri": str(tiny_model_dir)},
                "dataset": {"uri": str(DATA / "test.jsonl")},
                "tasks": [{"name": "mmlu", "benchmark": "mmlu", "fewshotUri": str(DATA / "dev.jsonl")}],
                "metrics": ["accuracy"],
                "fewshot": {"numFewshot": 2},
                "generation": {"batchSize": 4},
                "output": {"uri": str(tmp_path / output)},
            },
        }
        path.write_text(yaml.safe_dump(document))
        return path

    evaluate_manifest(manifest("one"), termination_log=None)
    env = {
        **os.environ,
        "KUBETUNE_NUM_NODES": "1",
        "KUBETUNE_NODE_RANK": "0",
        "KUBETUNE_PROCESSES_PER_NODE": "2",
        "KUBETUNE_JOB_UID": "uid-ppn",
        "KUBETUNE_METRICS_PORT": "off",
        "OMP_NUM_THREADS": "1",
    }
    pod = subprocess.run(
        [sys.executable, "-m", "kubetune_evaluator", "--config", str(manifest("two"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert pod.returncode == 0, pod.stderr[-3000:]
    assert "shard 1 of 2: results written" in pod.stderr + pod.stdout  # the second process did its share
    results = {name: json.loads((tmp_path / name / "results.json").read_text()) for name in ("one", "two")}
    for document in results.values():
        document.pop("reportUri")
    assert results["two"] == results["one"]
    assert (tmp_path / "two" / "samples.jsonl").read_text() == (
        tmp_path / "one" / "samples.jsonl"
    ).read_text()
    assert not (tmp_path / "two" / "shards").exists() or not any(
        (tmp_path / "two" / "shards").rglob("*.json")
    )


@pytest.mark.slow
def test_a_failing_shard_fails_the_attempt_with_its_own_reason(tmp_path: Path) -> None:
    """Rank 1's real evaluator process fails on bad input; its termination message, in its pod's status,
    makes the operator fail the attempt with InvalidSpec naming worker 1, while rank 0 still runs."""
    termination_log = tmp_path / "termination-log"
    termination_log.write_text("")
    manifest = tmp_path / "job.yaml"
    spec = {
        "model": {"uri": str(tmp_path / "no-such-model")},
        "dataset": {"uri": str(tmp_path / "missing.jsonl")},
        "output": {"uri": str(tmp_path / "out")},
    }
    manifest.write_text(
        yaml.safe_dump({"apiVersion": "kubetune.io/v1alpha1", "kind": "EvalJob", "spec": spec})
    )
    env = {
        **os.environ,
        "KUBETUNE_NUM_NODES": "2",
        "KUBETUNE_NODE_RANK": "1",
        contract.TERMINATION_LOG_ENV: str(termination_log),
    }
    shard = subprocess.run(
        [sys.executable, "-m", "kubetune_evaluator", "--config", str(manifest)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert shard.returncode == contract.EXIT_FAILED, shard.stderr[-2000:]

    def pod(rank: int, status: dict[str, Any]) -> dict[str, Any]:
        annotations = {"batch.kubernetes.io/job-completion-index": str(rank)}
        return {"metadata": {"name": f"ev-eval-0-{rank}", "annotations": annotations}, "status": status}

    terminated = {"exitCode": shard.returncode, "reason": "Error", "message": termination_log.read_text()}
    failed = {
        "phase": "Failed",
        "containerStatuses": [{"name": "evaluator", "state": {"terminated": terminated}}],
    }
    job = {"metadata": {"name": "ev-eval-0"}, "spec": {}, "status": {}}
    state = observe_attempt(job, [pod(0, {"phase": "Running"}), pod(1, failed)], 2, datetime.now(UTC), 300)
    assert (state.phase, state.reason) == ("Failed", "InvalidSpec")
    assert state.message.startswith("worker 1 (pod ev-eval-0-1): ") and "missing.jsonl" in state.message
    assert state.failure is not None and not state.failure.retriable
