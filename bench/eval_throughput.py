"""Evaluator throughput: batched generation vs batch size 1, and metric time per 1,000 samples.

    OMP_NUM_THREADS=1 .venv/bin/python bench/eval_throughput.py --samples 64 --batch-size 16

Builds the tiny test model (kubetune_devtools.tiny_models), generates `--samples` predictions with
left-padded batches of `--batch-size` and with batch size 1 (same prompts, greedy), checks that
both give the same text, and times rouge/bleu/exact_match (+ their bootstrap CIs) on 1,000 samples.
Times are CPU seconds of this (single-threaded) process, so a busy shared machine does not skew them.
Prints a JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _time(fn: Any) -> tuple[float, Any]:
    """CPU seconds of this process: on a shared machine wall time mostly measures the neighbours."""
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def generation_throughput(samples: int, batch_size: int, max_new_tokens: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kubetune_devtools.tiny_models import build_tiny_model, reverse_task_rows
    from kubetune_evaluator.generation import generate_predictions

    with tempfile.TemporaryDirectory() as tmp:
        directory = build_tiny_model(Path(tmp) / "model", hidden_size=256, layers=4)
        model = AutoModelForCausalLM.from_pretrained(directory).eval()
        tokenizer = AutoTokenizer.from_pretrained(directory)
    torch.manual_seed(0)
    prompts = [f"Reverse: {row['word']}\nAnswer:" for row in reverse_task_rows(samples, seed=1, max_len=12)]

    def run(size: int) -> list[str]:
        return generate_predictions(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=size)

    run(batch_size)  # warm-up
    single_s, single = _time(lambda: run(1))
    batched_s, batched = _time(lambda: run(batch_size))
    same = sum(a == b for a, b in zip(single, batched, strict=True))
    return {
        "samples": samples,
        "maxNewTokens": max_new_tokens,
        "batchSize": batch_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "samplesPerCpuSecondBatch1": samples / single_s,
        "samplesPerCpuSecondBatched": samples / batched_s,
        "speedup": single_s / batched_s,
        "identicalPredictions": same,
    }


def metric_time(samples: int) -> dict[str, Any]:
    from kubetune_evaluator.metrics.bootstrap import bootstrap_ci
    from kubetune_evaluator.metrics.registry import score_references

    rng = random.Random(0)
    words = [
        "the",
        "a",
        "cat",
        "dog",
        "sat",
        "ran",
        "on",
        "under",
        "mat",
        "table",
        "quick",
        "slow",
        "red",
        "blue",
    ]
    references = [[" ".join(rng.choices(words, k=rng.randint(8, 30)))] for _ in range(samples)]
    predictions = [
        " ".join(w if rng.random() < 0.7 else rng.choice(words) for w in refs[0].split())
        for refs in references
    ]
    per_1000: dict[str, float] = {}
    for metric in ("rouge", "bleu", "exact_match"):
        seconds, output = _time(lambda m=metric: score_references(m, predictions, references))
        per_1000[metric] = seconds * 1000 / samples
        ci_seconds, _ = _time(lambda o=output: [bootstrap_ci(s) for s in o.scores.values()])
        per_1000[f"{metric}BootstrapCi"] = ci_seconds * 1000 / samples
    return {"samples": samples, "cpuSecondsPer1000Samples": per_1000}


def versus_lm_eval(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from eval_vs_lm_eval import compare
    from kubetune_devtools.tiny_models import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "model", hidden_size=256, layers=4)
        if args.vocab_size:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(model_dir)
            model.resize_token_embeddings(args.vocab_size, mean_resizing=False)
            model.save_pretrained(model_dir)
        result = compare(
            Path(tmp),
            model_dir,
            questions=args.questions,
            fewshot=args.fewshot,
            batch_size=args.batch_size,
            repeats=args.repeats,
        )
    return {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torchThreads": torch.get_num_threads(),
        "vocabSize": args.vocab_size or 320,
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--metric-samples", type=int, default=1000)
    parser.add_argument(
        "--vs-lm-eval",
        action="store_true",
        help="Instead: kubetune vs lm-evaluation-harness on one MMLU-format task (bench/eval_vs_lm_eval.py).",
    )
    parser.add_argument("--questions", type=int, default=200, help="--vs-lm-eval: questions scored.")
    parser.add_argument("--fewshot", type=int, default=5, help="--vs-lm-eval: examples per question.")
    parser.add_argument("--repeats", type=int, default=2, help="--vs-lm-eval: timed runs of each (best).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    parser.add_argument(
        "--vocab-size",
        type=int,
        default=0,
        help="--vs-lm-eval: resize the tiny model's embeddings to this vocabulary (e.g. 49152, SmolLM2's) "
        "so the output layer costs what a real model's does; 0 keeps the tokenizer's 320.",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.vs_lm_eval:
        print(json.dumps(versus_lm_eval(args), indent=2))
        return
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torchThreads": torch.get_num_threads(),
        "generation": generation_throughput(args.samples, args.batch_size, args.max_new_tokens),
        "metrics": metric_time(args.metric_samples),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
