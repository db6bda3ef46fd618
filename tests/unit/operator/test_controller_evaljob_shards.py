"""A sharded EvalJob (`resources.nodes > 1`) renders an Indexed Job of that many evaluator pods, each told its
rank, the pod count and the job's UID (which keys the shard files under output.uri)."""

from __future__ import annotations

from typing import Any

from kubetune_evaluator.shard import Shard
from kubetune_operator.api import EvalJobSpec
from kubetune_operator.controller.builders import Owner, build_evaluator_job
from kubetune_operator.controller.names import ANNOTATION_COMPLETION_INDEX
from kubetune_operator.controller.settings import OperatorSettings


def _job(nodes: int, processes: int = 1) -> dict[str, Any]:
    spec = EvalJobSpec.model_validate(
        {
            "model": {"uri": "s3://models/tuned/"},
            "dataset": {"uri": "s3://data/test.jsonl"},
            "resources": {"nodes": nodes, "processesPerNode": processes},
            "output": {"uri": "s3://evals/x/"},
        }
    )
    return build_evaluator_job(Owner("EvalJob", "ev", "team-a", "uid-7"), spec, 2, OperatorSettings())


def _env(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_nodes_become_an_indexed_job_of_evaluator_pods_with_rank_count_and_uid() -> None:
    job = _job(3)
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
    # One failed shard fails the Job, and the attempt with that pod's reason.
    assert job["spec"]["backoffLimit"] == 0
    env = _env(job)
    assert env["KUBETUNE_NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        f"metadata.annotations['{ANNOTATION_COMPLETION_INDEX}']"
    )
    assert env["KUBETUNE_NUM_NODES"]["value"] == "3"
    assert env["KUBETUNE_JOB_UID"]["value"] == "uid-7"
    assert env["KUBETUNE_RESTART"]["value"] == "2"
    # What the evaluator makes of them (the completion index as the pod would see it).
    plain = {name: item["value"] for name, item in env.items() if "value" in item}
    assert Shard.from_env({**plain, "KUBETUNE_NODE_RANK": "1"}) == Shard(1, 3)


def test_one_node_is_one_whole_shard() -> None:
    job = _job(1)
    assert job["spec"]["completions"] == 1
    plain = {name: item["value"] for name, item in _env(job).items() if "value" in item}
    assert Shard.from_env({**plain, "KUBETUNE_NODE_RANK": "0"}) == Shard(0, 1)


def test_processes_per_node_multiply_the_shards() -> None:
    env = _env(_job(2, processes=4))
    assert env["KUBETUNE_PROCESSES_PER_NODE"]["value"] == "4"
    plain = {name: item["value"] for name, item in env.items() if "value" in item}
    # Pod 1's third process (local rank 2, set by the pod's launcher) is shard 6 of 8.
    assert Shard.from_env({**plain, "KUBETUNE_NODE_RANK": "1", "KUBETUNE_LOCAL_RANK": "2"}) == Shard(6, 8)
