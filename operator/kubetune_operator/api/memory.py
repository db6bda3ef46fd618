"""Memory per device of a fine-tuning job, from the model's config.json alone: pure arithmetic.

One estimator for `kubetune train --dry-run`, the trainer (before it loads weights) and the operator (before
it creates pods). It lives with the API models because the operator image has no torch and may not import the
trainer.

The dtype recipe it models (the trainer's: modeling.py, sharding.py):
- GPU: fp32 weights computing in bf16 (Accelerate's autocast; FSDP's MixedPrecisionPolicy(param_dtype=bf16,
  reduce_dtype=fp32)); fp32 gradients and fp32 AdamW state (two moments): 4 + 4 + 8 = 16 bytes per trainable
  parameter. Under DDP autocast's bf16 copies of the weights of every linear layer are kept for the backward
  pass (2 bytes/param, counted in `overhead`); FSDP shards the fp32 weights, gradients and optimizer state
  over all processes and gathers the bf16 weights of about two decoder layers at a time (plus the root unit:
  embeddings and output layer). LoRA keeps the frozen base in fp32 (4 bytes/param, sharded under FSDP);
  QLoRA keeps the decoder's linear layers in 4-bit NF4 with double-quantised block scales (~0.52
  bytes/param) and the rest (embeddings, norms, output layer) in fp32, as peft's
  prepare_model_for_kbit_training leaves them. Adapters are trained like full weights (16 bytes/param).
- CPU: everything fp32: 16 bytes per trainable parameter, 4 per frozen one, fp32 activations, and a
  128 MiB runtime reserve.

Activations count the tensors autograd keeps for the backward pass of a Hugging Face Llama-style decoder
with SDPA attention (no sequence x sequence scores), per token of the micro-batch: residual stream and
RMSNorm internals, the attention inputs/outputs, the SwiGLU intermediates, the logits and the log-softmax of
the loss; plus the attention mask of packed rows (batch x seq x seq). A frozen linear layer keeps no input
(no weight gradient), which is why LoRA needs less. With activation checkpointing per decoder layer only each
layer's input stays, plus one layer being recomputed. A compiled layer (hyperparameters.compile, full
fine-tuning on GPU) keeps less: its pointwise work is recomputed in the backward pass.
Dense decoder-only models only (no mixture of experts); unknown LoRA target names count no parameters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from kubetune_operator.api.finetunejob import FineTuneJobSpec

GiB: Final = 1024**3
DEFAULT_GPU_MEMORY: Final = 80 * 10**9
"""Assumed per-GPU memory when none is known: an 80 GB A100/H100."""
GPU_RUNTIME_RESERVE: Final = 1 * GiB
"""CUDA context, cuBLAS/NCCL workspaces and allocator slack that no tensor accounts for."""
CPU_RUNTIME_RESERVE: Final = 128 * 2**20
"""What the trainer process adds on CPU beyond the tensors counted here (batches, loss bookkeeping, autograd
and thread pools): its peak RSS (bench/memory_estimate_cpu.py, MALLOC_MMAP_THRESHOLD_=65536) minus that of
the same forward/backward/AdamW loop run bare was 135-146 MiB."""
NF4_BYTES_PER_PARAM: Final = 0.5 + 1 / 64 + 4 / (64 * 256)
"""4-bit weights, 8-bit absmax per 64-value block, fp32 scale per 256 blocks (bitsandbytes double quant)."""

Method = Literal["full", "lora", "qlora"]
Strategy = Literal["ddp", "fsdp"]
Device = Literal["gpu", "cpu"]
METHODS: Final[tuple[Method, ...]] = ("full", "lora", "qlora")
STRATEGIES: Final[tuple[Strategy, ...]] = ("ddp", "fsdp")
UNSUPPORTED: Final[frozenset[tuple[Strategy, Method]]] = frozenset({("fsdp", "qlora")})
"""Combinations the trainer refuses (sharding.py: a 4-bit base is replicated, not sharded)."""


class ModelConfigError(ValueError):
    """config.json lacks what the estimate needs (not a Llama-style decoder)."""


@dataclass(frozen=True)
class ModelShape:
    """The dimensions of a decoder-only transformer, from a Hugging Face config.json."""

    hidden_size: int
    num_layers: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ModelShape:
        # Multimodal and some newer configs nest the language model's settings under text_config.
        text = config.get("text_config")
        source = text if isinstance(text, Mapping) else config
        try:
            hidden = int(source["hidden_size"])
            heads = int(source["num_attention_heads"])
            shape = cls(
                hidden_size=hidden,
                num_layers=int(source["num_hidden_layers"]),
                intermediate_size=int(source["intermediate_size"]),
                num_heads=heads,
                num_kv_heads=int(source.get("num_key_value_heads") or heads),
                head_dim=int(source.get("head_dim") or hidden // heads),
                vocab_size=int(source["vocab_size"]),
                tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            )
        except KeyError as missing:
            raise ModelConfigError(
                f"config.json has no {missing.args[0]}: not a Llama-style decoder"
            ) from None
        except (TypeError, ValueError, ZeroDivisionError) as bad:
            raise ModelConfigError(f"config.json: {bad}") from None
        if min(shape.hidden_size, shape.num_layers, shape.intermediate_size, shape.vocab_size) <= 0:
            raise ModelConfigError("config.json: sizes must be positive")
        return shape

    @property
    def q_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder layer, by its usual module name."""
        h, i = self.hidden_size, self.intermediate_size
        return {
            "q_proj": (h, self.q_size),
            "k_proj": (h, self.kv_size),
            "v_proj": (h, self.kv_size),
            "o_proj": (self.q_size, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    @property
    def layer_linear_params(self) -> int:
        return sum(a * b for a, b in self.linear_shapes().values())

    @property
    def layer_params(self) -> int:
        return self.layer_linear_params + 2 * self.hidden_size  # two RMSNorm weights

    @property
    def embedding_params(self) -> int:
        """Input embedding plus the output head (one matrix when tied) plus the final norm."""
        head = 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size
        return self.vocab_size * self.hidden_size + head + self.hidden_size

    @property
    def parameters(self) -> int:
        return self.num_layers * self.layer_params + self.embedding_params

    def lora_parameters(self, rank: int, targets: Sequence[str]) -> int:
        shapes = self.linear_shapes()
        per_layer = sum(rank * (shapes[t][0] + shapes[t][1]) for t in set(targets) if t in shapes)
        return self.num_layers * per_layer


@dataclass(frozen=True)
class TrainingSetup:
    """What, besides the model, decides the memory per device."""

    method: Method = "full"
    strategy: Strategy = "ddp"
    world_size: int = 1
    """Processes of the whole job (nodes x processes per node); FSDP shards over all of them."""
    micro_batch: int = 1
    """Sequences per process per forward pass (hyperparameters.batchSize)."""
    max_seq_length: int = 1024
    gradient_checkpointing: bool = False
    lora_rank: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    lora_dropout: bool = True
    device: Device = "gpu"
    attention: Literal["sdpa", "flex"] = "sdpa"
    """flex keeps no row-wide mask (its BlockMask is a few bytes per 128 x 128 block)."""
    compile: bool = False
    """hyperparameters.compile: Inductor recomputes a layer's pointwise work in the backward pass instead of
    keeping it (see `_activation_bytes_per_token_per_layer`)."""


@dataclass(frozen=True)
class Estimate:
    """Bytes per device (one process), by what holds them."""

    setup: TrainingSetup
    parameters: int
    trainable: int
    weights: int
    """Trainable weights (fp32) and the frozen base (bf16, NF4 or fp32), this device's share."""
    gradients: int
    optimizer: int
    activations: int
    overhead: int
    """Held beside the activations: bf16 compute copies, gathered FSDP layers, the loss's gradients, DDP
    gradient buckets and the runtime (on CPU also the optimizer step's temporaries)."""
    runtime: int = 0
    """The part of `overhead` that is no tensor (CUDA context and workspaces; on CPU the process's own)."""
    notes: tuple[str, ...] = field(default=())
    persistent: int = 0
    """The part of `overhead` held through the optimizer step too (runtime, DDP buckets)."""

    @property
    def gradients_replace_activations(self) -> bool:
        """GPU: backward allocates the gradients as it frees the activations, and the caching allocator
        reuses that memory, so the peak is the larger of the backward's start (activations + overhead) and
        the optimizer step (gradients + the persistent part of the overhead), measured phase by phase by
        bench/gpu_memory_probe.py. On CPU the peak RSS behaves as if all were held at once (freed heap
        memory is not returned: bench/memory_estimate_cpu.py), so the parts add up."""
        return self.setup.device == "gpu"

    @property
    def total(self) -> int:
        state = self.weights + self.optimizer
        backward = self.activations + self.overhead
        if self.gradients_replace_activations:
            return state + max(backward, self.gradients + self.persistent)
        return state + self.gradients + backward

    @property
    def tensor_bytes(self) -> int:
        """`total` without the runtime reserve: what torch.cuda.max_memory_allocated counts on a GPU."""
        return self.total - self.runtime

    @property
    def model_state_bytes_per_parameter(self) -> float:
        """(weights + gradients + optimizer) / parameters: 16 for full + AdamW + DDP."""
        return (self.weights + self.gradients + self.optimizer) / self.parameters

    def fits(self, device_memory: int) -> bool:
        return self.total <= device_memory

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.setup.method,
            "strategy": self.setup.strategy,
            "worldSize": self.setup.world_size,
            "parameters": self.parameters,
            "trainable": self.trainable,
            "weights": self.weights,
            "gradients": self.gradients,
            "optimizer": self.optimizer,
            "activations": self.activations,
            "overhead": self.overhead,
            "total": self.total,
        }


def _activation_bytes_per_token_per_layer(shape: ModelShape, setup: TrainingSetup) -> float:
    """Bytes autograd keeps per token for one decoder layer (see the module docstring)."""
    h, kv, i = shape.hidden_size, shape.kv_size, shape.intermediate_size
    gpu = setup.device == "gpu"
    compute = 2 if gpu else 4  # bf16 autocast on GPU
    residual = _residual_bytes(setup)
    # SDPA keeps q, k, v and its output; o_proj's input is a contiguous copy of that output.
    full_attention = compute * (2 * h + 2 * kv + h)
    if setup.method == "full" and gpu and setup.compile:
        # A compiled layer (Inductor's min-cut partitioner) keeps the inputs of matmuls and attention and
        # recomputes the pointwise work from them: per RMSNorm its input and one bf16 normalised copy shared
        # by the linears it feeds (the fp32 normalised value and autocast's per-linear casts are
        # recomputed); in the MLP gate, up and their product (silu(gate) is recomputed). Shown by
        # bench/compile_activations.py on CPU (saved tensors of eager vs compiled layers), and on the H200:
        # full-ddp-c / full-fsdp-c peaks within 2 % (docs/trainer.md).
        norms = 2 * (residual * h + compute * h)
        return norms + full_attention + 3 * compute * i
    if setup.method == "full":
        # Per RMSNorm: its input, its fp32 normalised value (for the weight's gradient), and the inputs of
        # the linears it feeds: under DDP autocast casts the fp32 output once per linear (q, k, v; gate, up:
        # five bf16 copies, measured), under FSDP the output is already bf16 and shared; on CPU the norm's
        # output itself.
        casts = 5 if gpu and setup.strategy == "ddp" else 2
        norms = 2 * (residual * h + 4 * h) + casts * compute * h
        # SiLU keeps gate, the product keeps silu(gate) and up, down_proj keeps the product.
        mlp = 4 * compute * i
        return norms + full_attention + mlp
    norms = 2 * residual * h  # frozen norm weights: only the input is kept
    attention = compute * (2 * h + 2 * kv)  # frozen linears keep no input
    # down_proj is frozen: its input is not kept. bitsandbytes returns a 4-bit layer's output in its
    # input's dtype, fp32 here (the residual stream), so QLoRA's MLP intermediates are fp32 (measured).
    mlp = 3 * (4 if setup.method == "qlora" else compute) * i
    shapes = shape.linear_shapes()
    adapters = 0.0
    for target in set(setup.lora_targets):
        if target in shapes:
            in_features = shapes[target][0]
            # lora_A keeps its (dropped-out) input, the dropout its mask, lora_B the rank-r activation.
            adapters += compute * in_features + (in_features if setup.lora_dropout else 0)
            adapters += compute * setup.lora_rank
    return norms + attention + mlp + adapters


def _residual_bytes(setup: TrainingSetup) -> int:
    """The residual stream's element size: fp32 from fp32 embeddings, except under FSDP on GPU, whose
    MixedPrecisionPolicy casts each layer's inputs to bf16."""
    return 2 if setup.device == "gpu" and setup.strategy == "fsdp" else 4


def _activations(shape: ModelShape, setup: TrainingSetup) -> int:
    tokens = setup.micro_batch * setup.max_seq_length
    per_layer = _activation_bytes_per_token_per_layer(shape, setup)
    if setup.gradient_checkpointing:
        # Each layer's input stays; one layer at a time is recomputed with all its activations.
        layers = shape.num_layers * _residual_bytes(setup) * shape.hidden_size + per_layer
    else:
        layers = shape.num_layers * per_layer
    # The loss's fp32 log-softmax, and on GPU the bf16 logits (measured: 6 bytes per logit on GPU); on CPU
    # the logits and log-softmax's output, both fp32.
    logits = (2 + 4 if setup.device == "gpu" else 4 + 4) * shape.vocab_size
    # The attention mask of packed (or padded) rows: batch x seq x seq booleans, and the additive copy SDPA
    # keeps for its backward pass, one for all layers: on CPU fp32 and expanded to every head (measured); on
    # GPU counted once in bf16 (the memory-efficient kernel broadcasts it over heads).
    copy = 2 if setup.device == "gpu" else 4 * shape.num_heads
    mask = setup.micro_batch * setup.max_seq_length**2 * (1 + copy) if setup.attention == "sdpa" else 0
    return math.ceil(tokens * (layers + logits) + mask)


def estimate(shape: ModelShape, setup: TrainingSetup) -> Estimate:
    """Peak bytes on each device of a job (see the module docstring for the recipe)."""
    if setup.world_size < 1 or setup.micro_batch < 1 or setup.max_seq_length < 1:
        raise ValueError("world size, micro-batch and sequence length must be at least 1")
    if setup.method == "qlora" and setup.device == "cpu":
        raise ValueError("qlora runs on GPUs only (bitsandbytes 4-bit kernels)")
    gpu = setup.device == "gpu"
    shards = setup.world_size if setup.strategy == "fsdp" else 1
    total = shape.parameters
    notes: list[str] = []
    if setup.method == "full":
        trainable = total
        frozen_bytes = 0.0
    else:
        trainable = shape.lora_parameters(setup.lora_rank, setup.lora_targets)
        linear = shape.num_layers * shape.layer_linear_params
        if setup.method == "qlora":
            frozen_bytes = linear * NF4_BYTES_PER_PARAM + (total - linear) * 4
        else:
            frozen_bytes = total * 4
    weights = math.ceil((4 * trainable + frozen_bytes) / shards)
    gradients = math.ceil(4 * trainable / shards)
    optimizer = math.ceil(8 * trainable / shards)
    activations = _activations(shape, setup)

    # Held all along: the GPU runtime and DDP's gradient buckets (a second copy of the gradients).
    persistent = GPU_RUNTIME_RESERVE if gpu else CPU_RUNTIME_RESERVE
    if setup.strategy == "ddp" and setup.world_size > 1:
        persistent += 4 * trainable
        notes.append("DDP gradient buckets")
    if gpu and setup.strategy == "fsdp" and setup.gradient_checkpointing:
        # Measured, not explained: on an H200 (bench/gpu_memory_probe.py, 2026-11-30) FSDP2 with activation
        # checkpointing kept 4 bytes per parameter more allocated between steps than without (16.45 vs 12.36
        # GiB for 1.1B parameters, on one process), which no tensor of the recipe accounts for; the CPU does
        # not show it. Counted (as a gradient-sized buffer of this shard) so that the preflight does not
        # under-estimate such jobs by 14-18 %.
        persistent += math.ceil(4 * trainable / shards)
        notes.append(
            "FSDP with activation checkpointing: a gradient-sized buffer held between steps (measured)"
        )
    # Held during forward/backward, beside the activations.
    transient = 0.0
    head = shape.vocab_size * shape.hidden_size
    if gpu and setup.strategy == "ddp":
        # autocast's bf16 copies of the linear layers' weights (the output layer's too), kept for the
        # backward pass; a 4-bit layer is dequantised on the fly instead.
        linear = shape.num_layers * shape.layer_linear_params
        transient += 2 * (head + (linear if setup.method != "qlora" else 0))
        notes.append("bf16 copies of the fp32 weights (autocast) held until backward")
    if gpu and setup.strategy == "fsdp":
        # The gathered bf16 weights of the current and the prefetched layer, their unsharded fp32
        # gradients before the reduce-scatter, and the embeddings/head of the root unit.
        layer = shape.layer_params
        base = NF4_BYTES_PER_PARAM if setup.method == "qlora" else 2
        transient += 2 * 2 * layer if setup.method == "full" else 2 * base * layer
        transient += (4 * layer if setup.method == "full" else 0) + 2 * shape.embedding_params
        notes.append("FSDP: two gathered layers and the root unit's embeddings")
    if gpu and setup.method == "qlora":
        largest = max(a * b for a, b in shape.linear_shapes().values())
        transient += 2 * largest  # one linear layer dequantised to bf16 at a time
    if gpu:
        # The backward's first step, with every activation still held: the loss's gradients with respect to
        # the fp32 log-softmax and the logits (two fp32 tensors, measured).
        transient += 8 * shape.vocab_size * setup.micro_batch * setup.max_seq_length
        notes.append("the loss's fp32 gradients at the start of backward")
        overhead = persistent + transient  # fused AdamW (the trainer's on GPU): no step temporaries
    else:
        # The optimizer step runs once activations are freed; on CPU AdamW (no foreach) allocates one
        # temporary the size of the largest trainable tensor at a time.
        overhead = persistent + max(transient, 4 * _largest_trainable_tensor(shape, setup) - activations)
    return Estimate(
        setup=setup,
        parameters=total,
        trainable=trainable,
        weights=weights,
        gradients=gradients,
        optimizer=optimizer,
        activations=activations,
        overhead=math.ceil(overhead),
        runtime=GPU_RUNTIME_RESERVE if gpu else CPU_RUNTIME_RESERVE,
        notes=tuple(notes),
        persistent=math.ceil(persistent),
    )


def _largest_trainable_tensor(shape: ModelShape, setup: TrainingSetup) -> int:
    if setup.method == "full":
        return max(shape.vocab_size * shape.hidden_size, *(a * b for a, b in shape.linear_shapes().values()))
    shapes = shape.linear_shapes()
    return max((setup.lora_rank * max(shapes[t]) for t in setup.lora_targets if t in shapes), default=0)


def estimate_grid(
    shape: ModelShape, setup: TrainingSetup, methods: Sequence[Method] = METHODS
) -> list[Estimate]:
    """The same job under each strategy x method (qlora only on GPU)."""
    return [
        estimate(shape, replace(setup, strategy=strategy, method=method))
        for strategy in STRATEGIES
        for method in methods
        if not (method == "qlora" and setup.device == "cpu")
    ]


def setup_for(
    spec: FineTuneJobSpec, device: Device = "gpu", strategy: Strategy | None = None
) -> TrainingSetup:
    """The estimator's view of a FineTuneJob spec; `auto` is estimated as ddp unless `strategy` says."""
    lora = spec.effective_lora()
    chosen: Strategy = strategy or ("fsdp" if spec.distributed.strategy == "fsdp" else "ddp")
    return TrainingSetup(
        method=spec.method,
        strategy=chosen,
        world_size=spec.resources.nodes * spec.resources.processes_per_node,
        micro_batch=spec.hyperparameters.batch_size,
        max_seq_length=spec.hyperparameters.max_seq_length,
        gradient_checkpointing=spec.hyperparameters.gradient_checkpointing,
        lora_rank=lora.r,
        lora_targets=tuple(lora.target_modules),
        lora_dropout=lora.dropout > 0,
        device=device,
        attention=spec.hyperparameters.attention,
        compile=spec.hyperparameters.compile,
    )


def choose_strategy(shape: ModelShape, setup: TrainingSetup, device_memory: int) -> Strategy:
    """What `distributed.strategy: auto` resolves to: ddp when it fits one device (or cannot be sharded),
    else fsdp."""
    if ("fsdp", setup.method) in UNSUPPORTED:
        return "ddp"
    return "ddp" if estimate(shape, replace(setup, strategy="ddp")).fits(device_memory) else "fsdp"


def options_that_fit(
    shape: ModelShape,
    setup: TrainingSetup,
    device_memory: int,
    *,
    processes_per_node: int = 1,
    max_nodes: int = 64,
) -> list[str]:
    """Changes to the job under which it would fit, each alone or together with activation checkpointing
    (empty: none found). Smallest change first within a kind: the fewest nodes, the largest batch/length."""
    checkpointing = " and hyperparameters.gradientCheckpointing: true"

    def fitting(label: str, candidate: TrainingSetup) -> str | None:
        if estimate(shape, candidate).fits(device_memory):
            return label
        if not candidate.gradient_checkpointing:
            checkpointed = replace(candidate, gradient_checkpointing=True)
            if estimate(shape, checkpointed).fits(device_memory):
                return label + checkpointing
        return None

    def first(candidates: list[tuple[str, TrainingSetup]]) -> list[str]:
        for label, candidate in candidates:
            if (found := fitting(label, candidate)) is not None:
                return [found]
        return []

    options: list[str] = []
    if not setup.gradient_checkpointing and estimate(shape, replace(setup, gradient_checkpointing=True)).fits(
        device_memory
    ):
        options.append(checkpointing.removeprefix(" and "))
    for method in METHODS:
        if method != setup.method and not (method == "qlora" and setup.device == "cpu"):
            candidate: Strategy = "ddp" if (setup.strategy, method) in UNSUPPORTED else setup.strategy
            label = f"method: {method}" + (
                " with distributed.strategy: ddp" if candidate != setup.strategy else ""
            )
            options += first([(label, replace(setup, method=method, strategy=candidate))])
    if setup.strategy != "fsdp" and setup.world_size > 1 and ("fsdp", setup.method) not in UNSUPPORTED:
        options += first([("distributed.strategy: fsdp", replace(setup, strategy="fsdp"))])
    nodes = setup.world_size // max(1, processes_per_node)
    if ("fsdp", setup.method) not in UNSUPPORTED:
        options += first(
            [
                (
                    f"resources.nodes: {more} with distributed.strategy: fsdp",
                    replace(setup, strategy="fsdp", world_size=more * processes_per_node),
                )
                for more in range(nodes + 1, max_nodes + 1)
            ]
        )
    options += first(
        [
            (
                f"hyperparameters.batchSize: {batch} (raise gradientAccumulationSteps)",
                replace(setup, micro_batch=batch),
            )
            for batch in range(setup.micro_batch - 1, 0, -1)
        ]
    )
    lengths = [setup.max_seq_length >> shift for shift in range(1, 16) if setup.max_seq_length >> shift >= 8]
    options += first(
        [(f"hyperparameters.maxSeqLength: {n}", replace(setup, max_seq_length=n)) for n in lengths]
    )
    return options


# ------------------------------------------------------------------------------------- quantities
_SUFFIXES: Final[dict[str, int | Decimal]] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip
_QUANTITY = re.compile(
    r"^\+?(?P<number>[0-9]*\.?[0-9]+|[0-9]+\.)(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)


def quantity_bytes(quantity: str) -> int:
    """`80Gi` -> 85899345920: a Kubernetes quantity (already validated by the API models) in bytes.

    Here rather than kubernetes.utils.parse_quantity: the API package may not import the Kubernetes client.
    """
    match = _QUANTITY.fullmatch(quantity.strip())
    if match is None:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity")
    number, suffix = Decimal(match["number"]), match["suffix"] or ""
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        return int(number * Decimal(10) ** int(suffix[1:]))
    return int(number * Decimal(_SUFFIXES[suffix]))


def gib(value: float) -> str:
    return f"{value / GiB:.1f} GiB"


def insufficient_message(result: Estimate, device_memory: int, source: str, options: Sequence[str]) -> str:
    """The InsufficientMemory message, the same from the operator, the trainer and the CLI."""
    setup = result.setup
    parts = ", ".join(
        f"{name} {gib(value)}"
        for name, value in (
            ("weights", result.weights),
            ("gradients", result.gradients),
            ("optimizer", result.optimizer),
            ("activations", result.activations),
            ("other", result.overhead),
        )
    )
    if result.gradients_replace_activations:
        parts += "; peak = weights + optimizer + the larger of activations + other and gradients"
    fit = "; ".join(options) if options else "none of lora, qlora, more nodes or shorter sequences alone"
    return (
        f"memory estimate per {setup.device.upper()} {gib(result.total)} ({parts}) for method "
        f"{setup.method}, {setup.strategy} over {setup.world_size} process(es), batchSize "
        f"{setup.micro_batch} x maxSeqLength {setup.max_seq_length} exceeds the {gib(device_memory)} of "
        f"{source}; would fit: {fit}"
    )
