"""Sharded evaluation: the model work of each of N shards, against one pod, on the same EvalJob.

    OMP_NUM_THREADS=1 .venv/bin/python bench/eval_shards.py --hidden-size 512 --layers 8

Builds a random Llama of the given size (kubetune_devtools.tiny_models) and scores the staged MMLU subset
(tests/data/mmlu, 30 questions, 5-shot, batches of 4) as 1, 2 and 3 shards, one shard after the other in
this process, checking that the merged log-likelihoods equal one pod's. A shard's time is what its pod
spends on its share (inputs, model load, forward passes); the slowest shard bounds a sharded run's model
work. CPU seconds of this single-threaded process, so a busy shared machine does not skew them. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from kubetune_devtools.tiny_models import build_tiny_model
from kubetune_evaluator.runner import compute_shard, merge_requests
from kubetune_evaluator.shard import Shard
from kubetune_operator.api import EvalJobSpec

DATA = Path(__file__).parents[1] / "tests" / "data" / "mmlu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--max-shards", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(
            Path(tmp) / "model", seed=3, hidden_size=args.hidden_size, layers=args.layers
        )
        spec = EvalJobSpec.model_validate(
            {
                "model": {"uri": str(model)},
                "dataset": {"uri": str(DATA / "test.jsonl")},
                "tasks": [{"name": "mmlu", "benchmark": "mmlu", "fewshotUri": str(DATA / "dev.jsonl")}],
                "metrics": ["accuracy"],
                "fewshot": {"numFewshot": 5},
                "generation": {"batchSize": 4},
                "output": {"uri": str(Path(tmp) / "out")},
            }
        )
        compute_shard(spec)  # warm-up: first imports and kernel set-up are no shard's cost
        report: dict[str, Any] = {"hiddenSize": args.hidden_size, "layers": args.layers, "shards": {}}
        whole = None
        for count in range(1, args.max_shards + 1):
            seconds, parts = [], []
            for rank in range(count):
                start = time.process_time()
                _, systems = compute_shard(spec, Shard(rank, count))
                seconds.append(round(time.process_time() - start, 2))
                parts.append(systems[0])
            merged = merge_requests(parts).loglikelihoods["mmlu"]
            whole = whole or merged
            report["shards"][count] = {
                "cpuSecondsPerShard": seconds,
                "slowest": max(seconds),
                "equalToOnePod": merged == whole,
            }
        one = report["shards"][1]["slowest"]
        for entry in report["shards"].values():
            entry["speedup"] = round(one / entry["slowest"], 2)
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
