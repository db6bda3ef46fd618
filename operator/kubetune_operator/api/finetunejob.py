"""FineTuneJob: fine-tune a base model on prompt/completion pairs, write the tuned model to S3."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from kubetune_operator.api.base import (
    SHORT_STRING,
    ApiModel,
    FloatString,
    Quantity,
    Uri,
)
from kubetune_operator.api.common import (
    DatasetSpec,
    JobStatus,
    ModelSource,
    PodTemplate,
    ResourcesSpec,
    RunPolicy,
    StorageSpec,
    TaskSpec,
)

DEFAULT_TRAINER_IMAGE = "kubetune/trainer:0.1.0"


class LoraSpec(ApiModel):
    """LoRA adapter settings (peft); the base weights stay frozen."""

    r: int = Field(16, ge=1, le=1024, description="Rank of the adapter matrices.")
    alpha: int = Field(32, ge=1, le=4096, description="Scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "v_proj"],
        min_length=1,
        max_length=64,
        description="Names of the modules to adapt; checked against the model before training starts.",
    )
    merge: bool = Field(
        False, description="Also export the adapter merged into the base weights (a full model)."
    )


class Hyperparameters(ApiModel):
    """Optimisation settings."""

    epochs: float = Field(3, gt=0, le=1000, description="Passes over the training split (may be fractional).")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimiser steps (overrides `epochs`)."
    )
    learning_rate: FloatString = Field(
        2e-5, gt=0, lt=1, description='Peak learning rate of AdamW, e.g. "2e-5".'
    )
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Decay after warm-up."
    )
    batch_size: int = Field(8, ge=1, le=4096, description="Sequences (or packed rows) per process per step.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, le=1024, description="Micro-batches per optimiser step."
    )
    max_seq_length: int = Field(1024, ge=8, le=1048576, description="Tokens per sequence after truncation.")
    warmup_ratio: float = Field(0.03, ge=0.0, le=1.0, description="Fraction of steps of linear warm-up.")
    weight_decay: float = Field(0.0, ge=0.0, le=10.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, ge=0.0, description="Gradient clipping norm; 0 disables clipping.")
    packing: bool = Field(
        False,
        description="Pack several examples into each row (best-fit) without attention across examples.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Trade compute for memory by recomputing activations."
    )
    attention: Literal["sdpa", "flex"] = Field(
        "sdpa",
        description="Attention kernel. sdpa: PyTorch's scaled_dot_product_attention (packed rows use a "
        "row-wide block-diagonal mask); flex: PyTorch FlexAttention, which skips the blocks between packed "
        "examples (GPU only: it has no CPU backward).",
    )
    compile: bool = Field(
        False,
        description="Compile each decoder layer with torch.compile (Inductor): faster steps after a one-time "
        "compile at the start (fused norm, rotary and activation kernels) and fewer activations kept (their "
        "pointwise work is recomputed in the backward pass); not with method: qlora.",
    )
    eval_every_steps: int | None = Field(
        None, ge=1, description="Evaluate on the validation split every N steps (and always at the end)."
    )
    seed: int = Field(42, ge=0, description="Seed of initialisation, shuffling and dropout.")


class OutputSpec(ApiModel):
    """Where the tuned model, the model card and the split manifest are written."""

    uri: Uri = Field(description="s3://bucket/prefix/ or a local directory.")


class CheckpointSpec(ApiModel):
    """Checkpoints under `output.uri`/checkpoints/, used to resume after failures and suspension."""

    every_steps: int = Field(
        200, ge=1, description="Save a checkpoint every N optimiser steps (and on SIGTERM)."
    )
    keep: int = Field(2, ge=1, le=100, description="Number of newest checkpoints kept.")


Method = Literal["full", "lora", "qlora"]
Strategy = Literal["auto", "ddp", "fsdp"]


class DistributedSpec(ApiModel):
    """How the work is spread over the job's processes (all nodes together)."""

    strategy: Strategy = Field(
        "auto",
        description="ddp: every process holds the whole model (data parallel); fsdp: parameters, gradients "
        "and optimizer state are sharded over all processes of all nodes; auto: fsdp when the memory "
        "estimate does not fit one device, else ddp.",
    )


class FineTuneResourcesSpec(ResourcesSpec):
    """Compute for the trainer pods, plus what the memory preflight needs to know about the GPUs."""

    gpu_memory: Quantity | None = Field(
        None,
        description="Memory of each GPU, e.g. `80Gi`. When set, a job whose memory estimate per GPU does "
        "not fit fails with InsufficientMemory before any pod is created, naming the options that fit.",
    )


class FineTuneJobSpec(ApiModel):
    """What to fine-tune, on which data, how, and where the result goes."""

    model: ModelSource = Field(description="The base model.")
    dataset: DatasetSpec = Field(description="The training data (split into train/validation/test).")
    tasks: list[TaskSpec] = Field(
        default_factory=list,
        max_length=64,
        description="Tasks of an instruction mixture. Empty: the dataset is used as-is in `dataset.format`.",
    )
    method: Method = Field(
        "lora",
        description="full: train all weights; lora: train LoRA adapters only; qlora: LoRA adapters on a "
        "4-bit NF4 base (bitsandbytes; GPUs only).",
    )
    lora: LoraSpec | None = Field(
        None, description="LoRA settings; only with method: lora or qlora (defaults apply)."
    )
    distributed: DistributedSpec = Field(
        default_factory=DistributedSpec, description="Data parallel (ddp) or sharded (fsdp) training."
    )
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters, description="Optimisation.")
    resources: FineTuneResourcesSpec = Field(
        default_factory=FineTuneResourcesSpec, description="Pods, processes, GPUs."
    )
    image: str | None = Field(
        None,
        max_length=SHORT_STRING,
        min_length=1,
        description="Trainer container image. Unset: the operator's default (its --trainer-image, chart "
        f"value workloadImages.trainer), {DEFAULT_TRAINER_IMAGE} unless the platform mirrors it.",
    )
    output: OutputSpec = Field(description="Where the tuned model goes.")
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec, description="Checkpointing.")
    storage: StorageSpec = Field(default_factory=StorageSpec, description="S3 endpoint and credentials.")
    run_policy: RunPolicy = Field(default_factory=RunPolicy, description="Restarts, deadlines, TTL, suspend.")
    pod_template: PodTemplate = Field(default_factory=PodTemplate, description="Pod overrides.")

    @model_validator(mode="after")
    def _lora_only_with_lora_method(self) -> FineTuneJobSpec:
        if self.lora is not None and self.method == "full":
            raise ValueError("spec.lora: only allowed with method: lora or qlora")
        return self

    @model_validator(mode="after")
    def _qlora_needs_gpus(self) -> FineTuneJobSpec:
        # bitsandbytes' 4-bit kernels run on GPUs only: refuse at admission, not in a pod that crashes.
        if self.method == "qlora" and self.resources.gpus_per_node < 1:
            raise ValueError("spec.method: qlora needs GPUs: set spec.resources.gpusPerNode to 1 or more")
        return self

    @model_validator(mode="after")
    def _flex_needs_gpus(self) -> FineTuneJobSpec:
        if self.hyperparameters.attention == "flex" and self.resources.gpus_per_node < 1:
            raise ValueError(
                "spec.hyperparameters.attention: flex needs GPUs: set spec.resources.gpusPerNode to 1 or more"
            )
        return self

    @model_validator(mode="after")
    def _compile_not_with_qlora(self) -> FineTuneJobSpec:
        # bitsandbytes' 4-bit matmuls are opaque to torch.compile: every layer would break its graph.
        if self.method == "qlora" and self.hyperparameters.compile:
            raise ValueError("spec.hyperparameters.compile: not supported with method: qlora")
        return self

    @model_validator(mode="after")
    def _task_names_unique(self) -> FineTuneJobSpec:
        names = [task.name for task in self.tasks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"spec.tasks: duplicate task names {duplicates}")
        return self

    def effective_lora(self) -> LoraSpec:
        """The LoRA settings in force (defaults when `lora` is omitted)."""
        return self.lora if self.lora is not None else LoraSpec()


class Progress(ApiModel):
    """Live progress reported by rank 0 of the trainer."""

    step: int = Field(0, ge=0, description="Optimiser steps done.")
    total_steps: int = Field(0, ge=0, description="Optimiser steps planned.")
    epoch: float = Field(0.0, ge=0, description="Epochs done (fractional).")
    percent: float = Field(0.0, ge=0, le=100, description="step / totalSteps in percent.")
    eta_seconds: int | None = Field(None, ge=0, description="Estimated seconds until training ends.")
    train_loss: float | None = Field(None, description="Recent training loss.")
    eval_loss: float | None = Field(None, description="Latest validation loss.")
    tokens_per_second: float | None = Field(None, ge=0, description="Training throughput (all ranks).")
    updated_at: str | None = Field(None, description="When rank 0 reported this (RFC 3339).")


class CheckpointRef(ApiModel):
    """A complete checkpoint."""

    uri: str = Field(description="Where the checkpoint lies.")
    step: int = Field(ge=0, description="Optimiser step it was taken at.")
    digest: str | None = Field(
        None,
        description="Digest over its files' sha256 (recorded in its manifest.json with each file's; resume "
        "checks the downloaded files against them and fails with DigestMismatch when they differ).",
    )


class OutputRef(ApiModel):
    """The exported model."""

    uri: str = Field(description="Where the tuned model lies.")
    digest: str | None = Field(None, description="sha256 content digest of the exported files.")


class FineTuneJobStatus(JobStatus):
    """Observed state, written by the operator only."""

    restarts: int = Field(0, ge=0, description="Gang restarts so far.")
    progress: Progress | None = Field(None, description="Live training progress.")
    last_checkpoint: CheckpointRef | None = Field(None, description="Newest complete checkpoint.")
    output: OutputRef | None = Field(None, description="The exported model.")


class FineTuneJob(ApiModel):
    """A FineTuneJob manifest."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    api_version: Literal["kubetune.io/v1alpha1"] = Field("kubetune.io/v1alpha1", alias="apiVersion")
    kind: Literal["FineTuneJob"] = "FineTuneJob"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: FineTuneJobSpec
    status: FineTuneJobStatus | None = None
