"""kubetune vs lm-evaluation-harness on the same multiple-choice benchmark, side by side in one run.

Used by bench/eval_throughput.py --vs-lm-eval. Both score the same MMLU-format file (made-up questions,
one subject, a dev file for the 5-shot examples) with the same tiny Llama in fp32 on CPU: kubetune
through run_eval with an EvalJob task `{benchmark: mmlu}`, lm-eval through simple_evaluate with its own
MMLU YAML (`mmlu/default/_default_template_yaml`) over the local files. Each side is timed end to end
(model load, prompts, scoring), best of `repeats` runs, interleaved so a busy neighbour hurts both.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import yaml

WORDS = [
    "the",
    "of",
    "a",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "by",
    "with",
    "as",
    "at",
    "from",
    "his",
    "her",
    "it",
    "an",
    "which",
    "are",
    "be",
    "this",
]
SUBJECT = "high_school_geography"


def _questions(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "question": " ".join(rng.choices(WORDS, k=rng.randint(8, 40))) + "?",
            "subject": SUBJECT,
            "choices": [" ".join(rng.choices(WORDS, k=rng.randint(1, 6))) for _ in range(4)],
            "answer": rng.randrange(4),
        }
        for _ in range(n)
    ]


def write_data(directory: Path, questions: int) -> dict[str, Path]:
    files = {"test": directory / "test.jsonl", "dev": directory / "dev.jsonl"}
    for split, rows in (("test", _questions(questions, 1)), ("dev", _questions(5, 2))):
        files[split].write_text("".join(json.dumps(row) + "\n" for row in rows))
    return files


def run_kubetune(model_dir: Path, files: dict[str, Path], out: Path, fewshot: int, batch_size: int) -> float:
    from kubetune_evaluator.progress import LogProgress
    from kubetune_evaluator.runner import run_eval
    from kubetune_operator.api import EvalJobSpec

    spec = EvalJobSpec.model_validate(
        {
            "model": {"uri": str(model_dir)},
            "dataset": {"uri": str(files["test"])},
            "tasks": [{"name": "mmlu", "benchmark": "mmlu", "fewshotUri": str(files["dev"])}],
            "metrics": ["accuracy"],
            "fewshot": {"numFewshot": fewshot},
            "generation": {"batchSize": batch_size},
            "output": {"uri": str(out)},
        }
    )
    outcome = run_eval(spec, progress=LogProgress())
    return float(outcome.task_scores["mmlu"]["accuracy"]["model"]["value"])


def run_lm_eval(
    model_dir: Path, files: dict[str, Path], tasks_dir: Path, fewshot: int, batch_size: int
) -> float:
    import lm_eval
    import lm_eval.tasks

    root = Path(lm_eval.tasks.__file__).parent / "mmlu" / "default"
    task = {
        **yaml.safe_load((root / "_default_template_yaml").read_text()),
        "task": "bench_mmlu",
        "description": yaml.safe_load((root / f"mmlu_{SUBJECT}.yaml").read_text())["description"],
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {split: str(path) for split, path in files.items()}},
        "num_fewshot": fewshot,
    }
    tasks_dir.mkdir(exist_ok=True)
    (tasks_dir / "bench_mmlu.yaml").write_text(yaml.safe_dump(task))
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(model_dir), "dtype": "float32"},
        tasks=["bench_mmlu"],
        task_manager=lm_eval.tasks.TaskManager(include_path=str(tasks_dir), include_defaults=False),
        batch_size=batch_size,
        device="cpu",
        bootstrap_iters=0,
    )
    assert results is not None
    return float(results["results"]["bench_mmlu"]["acc,none"])


def compare(
    directory: Path, model_dir: Path, *, questions: int, fewshot: int, batch_size: int, repeats: int
) -> dict[str, Any]:
    """Samples per second (wall) of both tools on the same questions, and their ratio."""

    logging.getLogger("lm-eval").setLevel(logging.WARNING)
    files = write_data(directory, questions)
    # Warm-up on the same files: imports, tokenizer caches and the datasets library's JSON cache.
    run_kubetune(model_dir, files, directory / "out", fewshot, batch_size)
    run_lm_eval(model_dir, files, directory / "tasks", fewshot, batch_size)
    seconds: dict[str, list[float]] = {"kubetune": [], "lmEval": []}
    # CPU seconds of this process (all its threads): less swayed by neighbours on a shared machine.
    cpu_seconds: dict[str, list[float]] = {"kubetune": [], "lmEval": []}
    accuracy: dict[str, float] = {}
    for _ in range(repeats):
        for tool, run in (
            ("kubetune", lambda: run_kubetune(model_dir, files, directory / "out", fewshot, batch_size)),
            ("lmEval", lambda: run_lm_eval(model_dir, files, directory / "tasks", fewshot, batch_size)),
        ):
            start, cpu_start = time.perf_counter(), time.process_time()
            accuracy[tool] = run()
            seconds[tool].append(time.perf_counter() - start)
            cpu_seconds[tool].append(time.process_time() - cpu_start)
    rate = {tool: questions / min(times) for tool, times in seconds.items()}
    cpu_rate = {tool: questions / min(times) for tool, times in cpu_seconds.items()}
    return {
        "task": f"mmlu format, {questions} questions x 4 choices, {fewshot}-shot",
        "batchSize": batch_size,
        "wallSeconds": seconds,
        "questionsPerSecond": rate,
        "accuracy": accuracy,
        "ratioKubetuneOverLmEval": rate["kubetune"] / rate["lmEval"],
        "cpuSeconds": cpu_seconds,
        "questionsPerCpuSecond": cpu_rate,
        "cpuRatioKubetuneOverLmEval": cpu_rate["kubetune"] / cpu_rate["lmEval"],
    }
