"""Sharded EvalJobs: the shares of 2 and 3 pods, merged, give exactly the numbers of one pod.

Each shard runs the real tiny model on the batches it owns (kubetune_evaluator.shard); rank 0 merges and
scores once. Compared with `==`, not within a tolerance: scores, bootstrap CIs, verdict, per-sample records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubetune_devtools.tiny_models import build_tiny_model
from kubetune_evaluator.runner import EvalOutcome, compute_shard, finish_eval, merge_requests, run_eval
from kubetune_evaluator.sample_records import sample_records
from kubetune_evaluator.shard import Shard
from kubetune_evaluator.shard_exchange import (
    ShardIdentity,
    ShardMismatchError,
    gather_shards,
    shard_uri,
    write_shard,
)
from kubetune_operator.api import EvalJobSpec

DATA = Path(__file__).parents[2] / "data" / "mmlu"


def test_batches_are_dealt_back_and_forth_and_every_batch_has_one_owner() -> None:
    for count in (1, 2, 3, 5):
        shards = [Shard(rank, count) for rank in range(count)]
        for number in range(17):
            assert len([shard for shard in shards if shard.owns(number)]) == 1
    # Longest batches first: ranks 0 1 2, then 2 1 0, ... so no rank always gets the longer one.
    owners = [next(r for r in range(3) if Shard(r, 3).owns(n)) for n in range(8)]
    assert owners == [0, 1, 2, 2, 1, 0, 0, 1]
    assert Shard.from_env({"KUBETUNE_NODE_RANK": "2", "KUBETUNE_NUM_NODES": "3"}) == Shard(2, 3)
    assert Shard.from_env({}) == Shard(0, 1)
    with pytest.raises(ValueError, match="rank"):
        Shard(3, 3)


def _sharded(spec: EvalJobSpec, count: int) -> EvalOutcome:
    parts = [compute_shard(spec, Shard(rank, count)) for rank in range(count)]
    for _, systems in parts:
        for system in systems:
            # Every shard did a real share, not the whole: the merge below needs all of them.
            assert all(len(values) > 0 for values in system.loglikelihoods.values())
            assert all(len(values) > 0 for values in system.generations.values())
    merged = [merge_requests([systems[i] for _, systems in parts]) for i in range(len(parts[0][1]))]
    return finish_eval(spec, parts[0][0], merged)


def _assert_same(one: EvalOutcome, other: EvalOutcome) -> None:
    assert other.results == one.results
    assert other.verdict == one.verdict and other.reasons == one.reasons
    assert json.dumps(sample_records(other)) == json.dumps(sample_records(one))


@pytest.mark.slow
@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat-template"])
def test_mmlu_5_shot_on_2_and_3_shards_equals_one_pod(
    tiny_model_dir: Path, tmp_path: Path, chat: bool
) -> None:
    baseline = build_tiny_model(tmp_path / "baseline", seed=4)
    spec = EvalJobSpec.model_validate(
        {
            "model": {"uri": str(tiny_model_dir)},
            "baseline": {"uri": str(baseline)},
            "dataset": {"uri": str(DATA / "test.jsonl")},
            "tasks": [{"name": "mmlu", "benchmark": "mmlu", "fewshotUri": str(DATA / "dev.jsonl")}],
            "metrics": ["accuracy"],
            "fewshot": {"numFewshot": 5},
            "chatTemplate": {"apply": chat},
            # 30 questions in batches of 4: 8 batches, dealt 4/4 and 3/3/2.
            "generation": {"batchSize": 4},
            "thresholds": {"accuracy": 0.3, "maxRegression": 0.05},
            "output": {"uri": str(tmp_path / "out")},
        }
    )
    one = run_eval(spec)
    assert one.results["tasks"]["mmlu"]["samples"] == 30
    # samples.jsonl shows the prompts the model scored (rank 0 keeps the chat-templated ones)
    assert all(("<|assistant|>" in r["prompt"]) is chat for r in sample_records(one))
    for count in (2, 3) if not chat else (2,):
        _assert_same(one, _sharded(spec, count))


def _rows(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.mark.slow
def test_sampled_generations_and_perplexity_on_3_shards_equal_one_pod(
    varied_model_dir: Path, short_context_model_dir: Path, tmp_path: Path
) -> None:
    words = ["apple", "river", "stone", "cloud", "green", "seven", "music"]
    rows = [{"prompt": f"Say {w} {i}:", "completion": f" {w}"} for i, w in enumerate(words)]
    generation = EvalJobSpec.model_validate(
        {
            "model": {"uri": str(varied_model_dir)},
            "dataset": {
                "uri": _rows(tmp_path / "gen.jsonl", rows),
                "format": "prompt_completion",
                "split": "all",
            },
            "metrics": ["rouge", "bleu", "exact_match"],
            # Sampled: the per-batch seed is what makes the shards draw the tokens one pod draws.
            "generation": {"batchSize": 2, "maxNewTokens": 6, "temperature": 0.8},
            "output": {"uri": str(tmp_path / "gen-out")},
        }
    )
    one = run_eval(generation)
    (predictions,) = one.model.predictions.values()
    assert len(set(predictions)) > 1  # the model writes varied text, so the test can tell draws apart
    _assert_same(one, _sharded(generation, 3))

    texts = [{"text": " ".join(words[: 3 + i % 4] * (1 + i)) + "."} for i in range(7)]
    perplexity = EvalJobSpec.model_validate(
        {
            # A 32-token context: the longer texts are scored in several rolling windows.
            "model": {"uri": str(short_context_model_dir)},
            "dataset": {"uri": _rows(tmp_path / "text.jsonl", texts), "format": "text", "split": "all"},
            "metrics": ["perplexity"],
            "generation": {"batchSize": 2},
            "output": {"uri": str(tmp_path / "ppl-out")},
        }
    )
    one = run_eval(perplexity)
    _assert_same(one, _sharded(perplexity, 3))


@pytest.mark.slow
def test_rank_0_merges_the_files_of_its_own_run_only(tiny_model_dir: Path, tmp_path: Path) -> None:
    output = str(tmp_path / "out")
    spec = EvalJobSpec.model_validate(
        {
            "model": {"uri": str(tiny_model_dir)},
            "dataset": {"uri": str(DATA / "test.jsonl")},
            "tasks": [{"name": "mmlu", "benchmark": "mmlu"}],
            "metrics": ["accuracy"],
            "generation": {"batchSize": 8},
            "output": {"uri": output},
        }
    )
    identity = ShardIdentity.of(spec, {"KUBETUNE_JOB_UID": "uid-1", "KUBETUNE_RESTART": "0"})
    rank0, rank1 = Shard(0, 2), Shard(1, 2)
    tasks, own = compute_shard(spec, rank0)
    _, theirs = compute_shard(spec, rank1)

    with pytest.raises(TimeoutError, match=r"shards 1 of 2 wrote no results"):
        gather_shards(output, identity, rank0, own, timeout_s=0)

    # The same job's previous attempt and another job's shard sit at other names: never read.
    for stale in (
        ShardIdentity("uid-1", 1, identity.spec_digest),
        ShardIdentity("uid-2", 0, identity.spec_digest),
    ):
        write_shard(output, stale, rank1, theirs)
    with pytest.raises(TimeoutError):
        gather_shards(output, identity, rank0, own, timeout_s=0)

    # A file at this run's name whose content is another spec's is refused, not merged.
    other_spec = ShardIdentity("uid-1", 0, "sha256:" + "0" * 64)
    Path(shard_uri(output, identity, rank1)).parent.mkdir(parents=True, exist_ok=True)
    Path(shard_uri(output, identity, rank1)).write_text(
        Path(write_shard(output, other_spec, rank1, theirs)).read_text()
    )
    with pytest.raises(ShardMismatchError, match="another run"):
        gather_shards(output, identity, rank0, own, timeout_s=0)

    write_shard(output, identity, rank1, theirs)
    merged = gather_shards(output, identity, rank0, own, timeout_s=0)
    _assert_same(run_eval(spec), finish_eval(spec, tasks, merged))
