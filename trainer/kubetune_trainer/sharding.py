"""`strategy: fsdp`: the model's parameters, gradients and optimizer state sharded over every process.

FSDP2 (`torch.distributed.fsdp.fully_shard`) is applied here directly rather than through Accelerate's
`FullyShardedDataParallelPlugin(fsdp_version=2)`: Accelerate 1.15 only turns FSDP on for GPU process groups
(`DistributedType.MULTI_GPU` and kin; with `cpu=True` it stays MULTI_CPU and ignores the plugin, and a single
process gets no process group at all), so the same code would not run in the CPU tests, in a one-GPU
`kubetune train`, or in `bench/gpu_check.sh` on one GPU. Calling torch gives one path everywhere; Accelerate
still starts the processes and provides the device, reductions and autocast.

What a process holds:
- each decoder layer is its own FSDP unit (all-gathered just before its forward/backward, freed after), the
  root unit holds the embeddings, final norm and output layer;
- the weights it owns are fp32 `DTensor` shards (1/world of each tensor), so AdamW's state (also fp32) is
  sharded the same way; on GPU the layers compute in bf16 (`MixedPrecisionPolicy(param_dtype=bf16)`) and
  gradients are reduce-scattered in fp32;
- gradients are averaged over ranks (as DDP does), so the recipe's loss normalisation is unchanged.

Loading (`build_sharded_model`): every process builds the model's skeleton without weights
(`init_empty_weights`: parameters on the meta device, buffers real), shards it and allocates only its own
shards; rank 0 alone reads the checkpoint files into one full CPU copy and broadcasts it shard by shard
(`set_model_state_dict(broadcast_from_rank0=True)`). So N processes on a node never hold N full copies in
CPU RAM (rank 0 holds one while loading). Tested on CPU with gloo (torch 2.15); the same code runs on GPU
with NCCL, which bench/gpu_check.sh exercises (not yet run on a GPU when this was written).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.distributed as dist
from accelerate import init_empty_weights
from torch.distributed import HashStore  # type: ignore[attr-defined]  # not in torch's stubs
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    set_model_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from transformers import PreTrainedModel

from kubetune_operator.data.errors import ConfigError

if TYPE_CHECKING:
    from kubetune_operator.api import FineTuneJobSpec

Strategy = Literal["ddp", "fsdp"]


def resolve_strategy(spec: FineTuneJobSpec, *, fits_one_device: bool | None) -> Strategy:
    """The strategy in force. `auto`: fsdp when the memory estimate does not fit one device (`None`: the
    device memory is unknown, e.g. on CPU, so nothing says sharding is needed: ddp)."""
    requested = spec.distributed.strategy
    if spec.method == "qlora" and requested == "fsdp":
        # Sharding bitsandbytes' packed 4-bit weights needs a uniform storage dtype and a loader that knows
        # it; not supported here. A 4-bit base is small enough to be replicated (ddp).
        raise ConfigError(
            "spec.distributed.strategy: fsdp is not supported with method: qlora (use ddp or auto)"
        )
    if requested == "auto":
        return "fsdp" if fits_one_device is False and spec.method != "qlora" else "ddp"
    return "fsdp" if requested == "fsdp" else "ddp"


def ensure_process_group(on_gpu: bool) -> None:
    """FSDP and distributed checkpoints need a process group, also for one process (which Accelerate
    starts without one): a one-rank group on an in-memory store."""

    if dist.is_initialized():
        return
    backend = "cuda:nccl,cpu:gloo" if on_gpu else "gloo"

    dist.init_process_group(backend, store=HashStore(), rank=0, world_size=1)


def decoder_layer_classes(model: torch.nn.Module) -> set[str]:
    """Class names of the blocks to shard one by one: what transformers itself never splits."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or [])
    if not names:
        raise ConfigError(f"strategy fsdp: {type(model).__name__} names no decoder layer class to shard")
    return names


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    layer_classes = decoder_layer_classes(model)
    # By the class's ancestry: fully_shard swaps a layer's class for a subclass (FSDP<name>).
    return [m for m in model.modules() if any(c.__name__ in layer_classes for c in type(m).__mro__)]


def compile_decoder_layers(model: torch.nn.Module) -> int:
    """`hyperparameters.compile`: torch.compile each decoder layer in place; returns how many.

    Per layer rather than the whole model (as torchtitan does): the layers share one compiled graph (same
    code, parameters passed as inputs), so the compile takes the time of one layer, the attention-mask
    construction stays eager, and FSDP2's per-layer hooks stay outside the graphs. Applied after `shard`."""
    layers = decoder_layers(model)
    for layer in layers:
        layer.compile()
    return len(layers)


def shard(model: torch.nn.Module, *, device: torch.device, bf16: bool) -> torch.nn.Module:
    """Apply FSDP2 per decoder layer, then to the root (embeddings, final norm, output layer)."""

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    policy = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16
        else MixedPrecisionPolicy()
    )
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def build_sharded_model(
    *,
    build_full: Callable[[], torch.nn.Module],
    build_skeleton: Callable[[], torch.nn.Module],
    device: torch.device,
    bf16: bool,
    rank: int,
) -> torch.nn.Module:
    """The sharded model, loaded from rank 0's single full copy.

    `build_full()` returns the model with its weights (rank 0 only: the base model, plus LoRA adapters);
    `build_skeleton()` the same architecture (same LoRA wrapping, same activation checkpointing) without
    weights. Rank 0 builds its full copy first, with the RNG as set by the recipe, so LoRA's random
    initialisation equals the ddp path's.
    """

    full_state: dict[str, Any] = {}
    if rank == 0:
        full_model = build_full()
        full_state = full_model.state_dict()
        del full_model
    with torch.random.fork_rng(devices=[]), init_empty_weights(include_buffers=False):
        model = build_skeleton()
    # init_empty_weights registers each parameter anew, which unties the input and output embeddings.

    next(m for m in model.modules() if isinstance(m, PreTrainedModel)).tie_weights()
    # Buffers (rotary frequencies) are computed, not stored in the checkpoint: keep them across to_empty.
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    shard(model, device=device, bf16=bf16)
    model.to_empty(device=device)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
    set_model_state_dict(
        model, full_state, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    )
    return model


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every rank must call this (all-gathers); rank 0 gets the whole model's CPU state dict, others {}."""

    state: dict[str, Any] = get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    return state
