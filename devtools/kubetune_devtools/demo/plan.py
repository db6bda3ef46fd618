"""What the demo creates, as pure data: sizes, names, S3 locations and the two manifests.

Kept free of I/O so the manifests are unit-tested against the API models without a cluster.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from kubetune_devtools.demo.stdlib_docs import DEMO_TASKS

API_VERSION = "kubetune.io/v1alpha1"
BUCKET = "kubetune-demo"
SECRET_NAME = "demo-s3"
TUNED_TASK = "module"
"""The task the tiny model learns in the time budget (a copy task); the demo asserts it improved."""
GATE_SCORE = "rougeL"


@dataclass(frozen=True)
class DemoSize:
    """How much the demo trains and evaluates; the e2e test uses a smaller one."""

    rows: int = 368
    epochs: int = 12
    learning_rate: str = "3e-3"
    batch_size: int = 16
    """Per rank (two ranks: 32 per optimiser step). Measured: 8 per rank learned nothing in 80 steps."""
    max_seq_length: int = 160
    summarize_examples: int = 48
    """Cap on the long-prompt task in the mixture (FLAN-style per-task cap): keeps the CPU budget."""
    eval_samples: int = 40
    max_new_tokens: int = 24


@dataclass(frozen=True)
class DemoPlan:
    """Names and locations of one demo run (`run_id` keeps each run's S3 outputs apart)."""

    run_id: str
    s3_endpoint: str
    namespace: str = "kubetune-demo"
    system_namespace: str = "kubetune-system"
    release: str = "kubetune-demo"
    finetune_name: str = "stdlib-docs"
    eval_name: str = "stdlib-docs-eval"
    size: DemoSize = field(default_factory=DemoSize)

    @property
    def model_uri(self) -> str:
        return f"s3://{BUCKET}/runs/{self.run_id}/base/"

    @property
    def dataset_uri(self) -> str:
        return f"s3://{BUCKET}/runs/{self.run_id}/data/stdlib-docs.jsonl"

    @property
    def tuned_uri(self) -> str:
        return f"s3://{BUCKET}/runs/{self.run_id}/tuned/"

    @property
    def eval_uri(self) -> str:
        return f"s3://{BUCKET}/runs/{self.run_id}/eval/"

    def storage(self) -> dict[str, Any]:
        return {"endpoint": self.s3_endpoint, "region": "us-east-1", "credentialsSecret": SECRET_NAME}


def demo_tasks(size: DemoSize) -> list[dict[str, Any]]:
    """The two FLAN-style tasks; the long-prompt one capped and weighted down."""
    tasks = copy.deepcopy(DEMO_TASKS)
    for task in tasks:
        if task["name"] != TUNED_TASK:
            task["maxExamples"] = size.summarize_examples
    return tasks


def finetunejob_manifest(plan: DemoPlan) -> dict[str, Any]:
    """Two nodes, one process each (data parallel over gloo on CPU), full fine-tuning.

    Full rather than LoRA: the tiny base model is randomly initialised, and adapters on random weights
    do not learn a copy task in a few minutes."""
    size = plan.size
    return {
        "apiVersion": API_VERSION,
        "kind": "FineTuneJob",
        "metadata": {"name": plan.finetune_name, "namespace": plan.namespace},
        "spec": {
            "model": {"uri": plan.model_uri},
            "dataset": {"uri": plan.dataset_uri, "split": {"validation": 0.05, "test": 0.1, "seed": 42}},
            "tasks": demo_tasks(size),
            "method": "full",
            "hyperparameters": {
                "epochs": size.epochs,
                "learningRate": size.learning_rate,
                "batchSize": size.batch_size,
                "maxSeqLength": size.max_seq_length,
                "packing": False,
                "warmupRatio": 0.05,
                "seed": 42,
            },
            "resources": {"nodes": 2, "processesPerNode": 1},
            "output": {"uri": plan.tuned_uri},
            "checkpoint": {"everySteps": 10_000, "keep": 1},
            "storage": plan.storage(),
            "runPolicy": {"maxRestarts": 1, "activeDeadlineSeconds": 1800},
        },
    }


def evaljob_manifest(plan: DemoPlan) -> dict[str, Any]:
    """Score the tuned model and its base on the FineTuneJob's held-out test rows of both tasks."""
    size = plan.size
    return {
        "apiVersion": API_VERSION,
        "kind": "EvalJob",
        "metadata": {"name": plan.eval_name, "namespace": plan.namespace},
        "spec": {
            "model": {"fineTuneJobRef": {"name": plan.finetune_name}},
            "baseline": {"uri": plan.model_uri},
            "dataset": {"uri": plan.dataset_uri, "split": "test"},
            "tasks": demo_tasks(size),
            "metrics": ["rouge", "bleu", "exact_match"],
            "generation": {
                "maxNewTokens": size.max_new_tokens,
                "temperature": 0.0,
                "batchSize": 16,
                "maxSamples": size.eval_samples,
            },
            "thresholds": {"maxRegression": 0.05},
            "output": {"uri": plan.eval_uri},
            "storage": plan.storage(),
            "runPolicy": {"maxRestarts": 0, "activeDeadlineSeconds": 1800},
        },
    }
