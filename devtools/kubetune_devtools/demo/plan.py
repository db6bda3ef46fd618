"""What the demo creates, as pure data: the recipe per base model, names, S3 locations and the manifests.

Kept free of I/O so the manifests are unit-tested against the API models without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from kubetune_devtools.demo.stdlib_docs import GENERAL_TASK, TARGET_TASK, PromptFormat, task_specs

API_VERSION = "kubetune.io/v1alpha1"
BUCKET = "kubetune-demo"
SECRET_NAME = "demo-s3"
MAX_REGRESSION = 0.05
"""The EvalJob's `thresholds.maxRegression`: a drop of more than 5% of the base's score on any task and score
fails the verdict when its CI confirms it (docs/evaluator.md, Verdict)."""

Method = Literal["full", "lora"]
BaseModelName = Literal["tiny", "smollm2"]


@dataclass(frozen=True)
class DemoSize:
    """How much the demo trains and evaluates; the e2e tests use smaller ones."""

    rows: int = 368
    epochs: int = 1
    max_steps: int | None = None
    """Stops training after this many optimiser steps (before the epochs end); None: the epochs decide."""
    batch_size: int = 8
    """Per rank; two ranks (two nodes), so twice this per optimiser step."""
    max_seq_length: int = 64
    eval_samples: int = 24
    """Held-out test rows scored per task (greedy generation dominates the EvalJob's time)."""
    target_new_tokens: int = 8
    general_new_tokens: int = 24


@dataclass(frozen=True)
class DemoRecipe:
    """How the demo tunes and scores one base model."""

    prompt_format: PromptFormat
    method: Method
    """What `kubetune demo` runs without `--compare`."""
    learning_rates: dict[str, str]
    size: DemoSize
    metrics: tuple[str, ...]
    gate_score: str
    """Score of the target task whose delta CI must lie above 0."""
    general_score: str = "rougeL"
    lora: dict[str, Any] = field(
        default_factory=lambda: {
            "r": 16,
            "alpha": 32,
            "dropout": 0.0,
            "targetModules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        }
    )
    """Measured on SmolLM2 (2026-11-30): r 8 on q/v at lr 5e-4 reached only 0.12 exact match on the target
    task in 20 steps (delta CI [+0.00, +0.29]); r 16 on all attention projections at lr 1e-3 learns it."""
    active_deadline_seconds: int = 1800


RECIPES: dict[str, DemoRecipe] = {
    # SmolLM2-135M-Instruct (pretrained): LoRA fits the CPU budget and learns the target task in one epoch.
    # BLEU is left out: on one-word answers (module names) it has no 4-grams and reads 0 for a correct answer.
    "smollm2": DemoRecipe(
        prompt_format="chatml",
        method="lora",
        learning_rates={"lora": "1e-3", "full": "5e-5"},
        size=DemoSize(),
        metrics=("rouge", "exact_match"),
        gate_score="exactMatch",
        active_deadline_seconds=3600,
    ),
    # The 4M-parameter random Llama (tests, quick runs): only full fine-tuning learns from random weights in
    # minutes, with a large learning rate and many epochs. Its base scores 0 on everything.
    "tiny": DemoRecipe(
        prompt_format="plain",
        method="full",
        learning_rates={"full": "3e-3", "lora": "3e-3"},
        size=DemoSize(epochs=12, batch_size=16, max_seq_length=160, eval_samples=40, target_new_tokens=24),
        metrics=("rouge", "bleu", "exact_match"),
        gate_score="rougeL",
    ),
}


@dataclass(frozen=True)
class DemoPlan:
    """Names and locations of one demo run (`run_id` keeps each run's S3 outputs apart)."""

    run_id: str
    s3_endpoint: str
    recipe: DemoRecipe = field(default_factory=lambda: RECIPES["smollm2"])
    methods: tuple[Method, ...] = ("lora",)
    namespace: str = "kubetune-demo"
    system_namespace: str = "kubetune-system"
    release: str = "kubetune-demo"

    @property
    def model_uri(self) -> str:
        return f"s3://{BUCKET}/runs/{self.run_id}/base/"

    @property
    def dataset_uri(self) -> str:
        return f"s3://{BUCKET}/runs/{self.run_id}/data/stdlib-docs.jsonl"

    def finetune_name(self, method: Method) -> str:
        return f"stdlib-docs-{method}"

    def eval_name(self, method: Method) -> str:
        return f"stdlib-docs-{method}-eval"

    def tuned_uri(self, method: Method) -> str:
        return f"s3://{BUCKET}/runs/{self.run_id}/tuned-{method}/"

    def eval_uri(self, method: Method) -> str:
        return f"s3://{BUCKET}/runs/{self.run_id}/eval-{method}/"

    @property
    def report_uri(self) -> str:
        return f"s3://{BUCKET}/runs/{self.run_id}/demo-report.html"

    def storage(self) -> dict[str, Any]:
        return {"endpoint": self.s3_endpoint, "region": "us-east-1", "credentialsSecret": SECRET_NAME}


def with_size(recipe: DemoRecipe, **changes: Any) -> DemoRecipe:
    """The recipe with some sizes changed (CLI options, tests)."""
    return replace(recipe, size=replace(recipe.size, **changes))


def finetunejob_manifest(plan: DemoPlan, method: Method) -> dict[str, Any]:
    """Two nodes, one process each (data parallel over gloo on CPU), on the target task only (single-task
    fine-tuning: the setting in which forgetting shows)."""
    recipe, size = plan.recipe, plan.recipe.size
    hyperparameters: dict[str, Any] = {
        "epochs": size.epochs,
        "learningRate": recipe.learning_rates[method],
        "batchSize": size.batch_size,
        "maxSeqLength": size.max_seq_length,
        "packing": False,
        "warmupRatio": 0.05,
        "seed": 42,
    }
    if size.max_steps is not None:
        hyperparameters["maxSteps"] = size.max_steps
    spec: dict[str, Any] = {
        "model": {"uri": plan.model_uri},
        "dataset": {"uri": plan.dataset_uri, "split": {"validation": 0.05, "test": 0.1, "seed": 42}},
        "tasks": task_specs([TARGET_TASK], recipe.prompt_format),
        "method": method,
        "hyperparameters": hyperparameters,
        "resources": {"nodes": 2, "processesPerNode": 1},
        "output": {"uri": plan.tuned_uri(method)},
        "checkpoint": {"everySteps": 10_000, "keep": 1},
        "storage": plan.storage(),
        "runPolicy": {"maxRestarts": 1, "activeDeadlineSeconds": recipe.active_deadline_seconds},
    }
    if method == "lora":
        spec["lora"] = dict(recipe.lora)
    return {
        "apiVersion": API_VERSION,
        "kind": "FineTuneJob",
        "metadata": {"name": plan.finetune_name(method), "namespace": plan.namespace},
        "spec": spec,
    }


def evaljob_manifest(plan: DemoPlan, method: Method) -> dict[str, Any]:
    """Score the tuned model and its base on the FineTuneJob's held-out test rows: the target task it was
    tuned on and the general task it never saw, with the forgetting check (`maxRegression`)."""
    recipe, size = plan.recipe, plan.recipe.size
    tasks = task_specs([TARGET_TASK, GENERAL_TASK], recipe.prompt_format)
    new_tokens = {TARGET_TASK: size.target_new_tokens, GENERAL_TASK: size.general_new_tokens}
    for task in tasks:
        task["generation"] = {"maxNewTokens": new_tokens[task["name"]]}
    return {
        "apiVersion": API_VERSION,
        "kind": "EvalJob",
        "metadata": {"name": plan.eval_name(method), "namespace": plan.namespace},
        "spec": {
            "model": {"fineTuneJobRef": {"name": plan.finetune_name(method)}},
            "baseline": {"uri": plan.model_uri},
            "dataset": {"uri": plan.dataset_uri, "split": "test"},
            "tasks": tasks,
            "metrics": list(recipe.metrics),
            "generation": {"temperature": 0.0, "batchSize": 16, "maxSamples": size.eval_samples},
            "thresholds": {"maxRegression": MAX_REGRESSION},
            "output": {"uri": plan.eval_uri(method)},
            "storage": plan.storage(),
            "runPolicy": {"maxRestarts": 0, "activeDeadlineSeconds": recipe.active_deadline_seconds},
        },
    }
