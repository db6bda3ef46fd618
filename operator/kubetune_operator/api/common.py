"""Spec and status parts that FineTuneJob and EvalJob share."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from kubetune_operator.api.base import (
    SHORT_STRING,
    TEMPLATE_LENGTH,
    AnnotationMap,
    ApiModel,
    Digest,
    ExtendedResourceName,
    LabelMap,
    Name,
    Quantity,
    Uri,
)
from kubetune_operator.api.naming import MAX_NODES, MAX_RESTARTS

DatasetFormat = Literal["auto", "prompt_completion", "alpaca", "messages", "text"]


class SplitSpec(ApiModel):
    """How the dataset is split into train / validation / test; deterministic for a given seed."""

    validation: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction of rows held out for validation.")
    test: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction of rows held out for the final test.")
    seed: int = Field(42, ge=0, description="Seed of the shuffle that assigns rows to splits.")

    @model_validator(mode="after")
    def _fractions_leave_training_rows(self) -> SplitSpec:
        if self.validation + self.test >= 1.0:
            raise ValueError("validation + test must be below 1.0 so that rows remain for training")
        return self


class DatasetSpec(ApiModel):
    """Where the rows come from and how to read them."""

    uri: Uri = Field(
        description="A .jsonl/.json/.csv/.parquet object, or a prefix (ending in /) of such shards: "
        "s3://bucket/key or a local path."
    )
    format: DatasetFormat = Field(
        "auto",
        description="Row format when no `tasks` are given: prompt_completion ({prompt, completion}), "
        "alpaca ({instruction, input, output}), messages ({messages: [{role, content}]}, rendered with "
        "the tokenizer's chat template), text ({text}), or auto (detected from the first row).",
    )
    split: SplitSpec = Field(default_factory=SplitSpec, description="Train/validation/test split.")


class TemplateSpec(ApiModel):
    """One prompt/completion template pair (Jinja2 `{{ field }}` or FLAN-style `{field}`)."""

    prompt: str = Field(
        max_length=TEMPLATE_LENGTH,
        min_length=1,
        description="Template of the prompt; every field of a row is a variable. It should begin with the "
        "instruction.",
    )
    completion: str = Field(
        max_length=TEMPLATE_LENGTH,
        min_length=1,
        description="Template of the completion (the tokens that carry the loss).",
    )


class TaskSpec(ApiModel):
    """One task of a (multi-task) mixture: its rows, its templates and its share of the mixture."""

    name: Name = Field(description="Task name, unique within the job; used in metrics and reports.")
    dataset: DatasetSpec | None = Field(
        None, description="The task's own dataset; defaults to the job's `dataset`."
    )
    templates: list[TemplateSpec] = Field(
        min_length=1,
        max_length=64,
        description="Templates for this task; each example is rendered with one of them, sampled with "
        "the split seed (FLAN-style).",
    )
    weight: float = Field(1.0, gt=0.0, le=1000.0, description="Relative weight of this task in the mixture.")
    max_examples: int | None = Field(
        None,
        ge=1,
        description="Cap on the number of examples taken from this task (FLAN-style examples cap).",
    )


class StorageSpec(ApiModel):
    """How pods reach S3. Credentials come only from a Secret in the job's namespace."""

    endpoint: str | None = Field(
        None,
        max_length=SHORT_STRING,
        pattern=r"^https?://[^\s]+$",
        description="S3 endpoint URL (MinIO, Ceph ...); exported to pods as AWS_ENDPOINT_URL. Unset: AWS S3.",
    )
    region: str = Field("us-east-1", max_length=64, description="S3 region (AWS_DEFAULT_REGION).")
    credentials_secret: Name | None = Field(
        None,
        description="Secret in the job's namespace with keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and "
        "optionally AWS_SESSION_TOKEN. Unset: the pods use the ambient AWS credential chain (IRSA, "
        "instance roles).",
    )


class ResourcesSpec(ApiModel):
    """Compute for the job's pods: one pod per node, `processesPerNode` processes in each."""

    nodes: int = Field(1, ge=1, le=MAX_NODES, description="Number of pods (one per node).")
    processes_per_node: int = Field(1, ge=1, le=64, description="Processes per pod (usually one per GPU).")
    gpus_per_node: int = Field(0, ge=0, le=64, description="GPUs requested by each pod.")
    # An extended resource: domain/name, so never cpu, memory or another native resource (those have no
    # domain, or kubernetes.io's); a pod asking for `cpu: <gpusPerNode>` would silently get CPUs.
    gpu_resource: ExtendedResourceName = Field(
        "nvidia.com/gpu",
        description="Extended resource name of the GPUs (domain/name, outside kubernetes.io).",
    )
    cpu: Quantity | None = Field(None, description="CPU request and limit of each pod, e.g. `16` or `500m`.")
    memory: Quantity | None = Field(None, description="Memory request and limit of each pod, e.g. `128Gi`.")
    scratch: Quantity | None = Field(
        None,
        description="Disk for each pod's scratch folder /tmp (the downloaded base model, checkpoint staging, "
        "caches), e.g. `200Gi`: the emptyDir's sizeLimit and an ephemeral-storage request and limit, so the "
        "scheduler places the pod where the disk is and an overflowing pod is evicted instead of filling the "
        "node. Unset: no limit.",
    )


FINETUNE_GRACE_SECONDS = 300
"""A FineTuneJob's default grace period: a checkpoint of a large model (weights and optimizer state, tens of
GiB) takes minutes to upload to S3, and a SIGKILL halfway leaves only the previous checkpoint."""
EVAL_GRACE_SECONDS = 30
"""An EvalJob's default: Kubernetes' own; the evaluator keeps nothing across a restart."""
MAX_GRACE_SECONDS = 86400


class RunPolicy(ApiModel):
    """Restarts, deadlines, clean-up and queueing."""

    max_restarts: int = Field(
        3,
        ge=0,
        le=MAX_RESTARTS,
        description="Gang restarts allowed after a worker failure before the job fails. Disruptions (reason "
        "Disrupted: eviction, preemption, a node drain) restart the gang without counting against it.",
    )
    active_deadline_seconds: int | None = Field(
        None, ge=1, description="Wall-clock limit from start; past it the job fails with DeadlineExceeded."
    )
    pending_timeout_seconds: int | None = Field(
        None,
        ge=1,
        description="Seconds the pods of an attempt may take to start (created, scheduled, containers "
        "running), counted from when its Job starts (after Kueue admits it); past it the job fails with "
        "Unschedulable (the scheduler's message) or PendingTimeout, naming what held the pods (quota, "
        "ServiceAccount, PriorityClass, Pod Security, ContainerCreating). Unset: unscheduled pods get the "
        "operator's --pending-timeout (chart value operator.pendingTimeout, 300), the rest at least 600.",
    )
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Delete the finished job (and its children) this long after it finished."
    )
    termination_grace_period_seconds: int | None = Field(
        None,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="The pods' terminationGracePeriodSeconds: how long a stopped pod (suspend, gang restart, "
        "deadline, deletion, eviction, drain) has between SIGTERM and SIGKILL. The trainer finishes the step "
        "in flight and saves a checkpoint in it, so size it for one checkpoint upload to S3. Unset: "
        f"{FINETUNE_GRACE_SECONDS} for a FineTuneJob, {EVAL_GRACE_SECONDS} for an EvalJob (which saves "
        "nothing on SIGTERM).",
    )
    suspend: bool = Field(
        False, description="Suspend the job: its pods go away, its state and checkpoints stay."
    )
    queue_name: str | None = Field(
        None,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Kueue LocalQueue; the child Job is created suspended for Kueue to admit.",
    )


class PodTemplate(ApiModel):
    """Overrides applied to every pod of the job."""

    node_selector: LabelMap = Field(
        default_factory=dict, max_length=64, description="Node selector of the pods."
    )
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list, max_length=64, description="Tolerations of the pods (core/v1 Toleration)."
    )
    affinity: dict[str, Any] = Field(
        default_factory=dict, description="Affinity of the pods (core/v1 Affinity)."
    )
    priority_class_name: str = Field("", max_length=SHORT_STRING, description="PriorityClass of the pods.")
    service_account_name: str = Field(
        "", max_length=SHORT_STRING, description="ServiceAccount of the pods; empty: the namespace default."
    )
    labels: LabelMap = Field(default_factory=dict, max_length=64, description="Extra pod labels.")
    annotations: AnnotationMap = Field(
        default_factory=dict, max_length=64, description="Extra pod annotations."
    )


class Condition(ApiModel):
    """A metav1.Condition."""

    type: str = Field(max_length=316, description="Condition type, e.g. Running, Succeeded, Failed, Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(max_length=1024, description="CamelCase reason, e.g. BackoffLimitExceeded.")
    message: str = Field("", max_length=32768, description="Human-readable details.")
    last_transition_time: str = Field(description="When the status last changed (RFC 3339).")
    observed_generation: int | None = Field(None, ge=0, description="Generation the condition was set for.")


Phase = Literal["Pending", "Running", "Restarting", "Suspended", "Succeeded", "Failed"]


class JobStatus(ApiModel):
    """The lifecycle fields of every kind's status, written by the operator only (controller/status.py
    derives them; each kind's status adds its own results)."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    phase: Phase | None = Field(
        None, description="Pending, Running, Restarting, Suspended, Succeeded or Failed."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Standard conditions.")
    observed_generation: int | None = Field(None, description="The spec generation this status reflects.")
    restarts: int = Field(0, ge=0, description="Restarts so far.")
    start_time: str | None = Field(None, description="When the first pods started (RFC 3339).")
    completion_time: str | None = Field(None, description="When the job finished (RFC 3339).")


class ObjectReference(ApiModel):
    """A reference to an object in the same namespace."""

    name: Name = Field(description="Name of the object.")


MODEL_DIGEST_DESCRIPTION = (
    "Pins the model: the sha256 digest its files must have (`sha256:<64 hex>`, the form of a FineTuneJob's "
    "status.output.digest; `kubetune digest URI` prints it). The pod computes it over the downloaded "
    "files (leaving out result.json, split/ and checkpoints/, which a FineTuneJob writes beside its "
    "model) before it loads any weights, and fails with DigestMismatch when they differ. Unset: not checked."
)


class ModelSource(ApiModel):
    """A model in Hugging Face layout (config.json, tokenizer files, safetensors)."""

    uri: Uri = Field(description="s3://bucket/prefix/ or a local directory.")
    digest: Digest | None = Field(None, description=MODEL_DIGEST_DESCRIPTION)


class Location(ApiModel):
    """Where a job writes its files."""

    uri: Uri = Field(description="s3://bucket/prefix/ or a local directory.")
