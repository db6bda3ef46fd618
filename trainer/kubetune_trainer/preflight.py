"""The memory preflight of the trainer and of `kubetune train --dry-run`.

The estimate itself is kubetune_operator.api.memory (pure arithmetic, shared with the operator); this module
reads the model's config.json, finds the device memory and turns "does not fit" into InsufficientMemory
before any weight is loaded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubetune_operator.api.contract import InsufficientMemoryError
from kubetune_operator.api.memory import (
    DEFAULT_GPU_MEMORY,
    UNSUPPORTED,
    Device,
    Estimate,
    ModelConfigError,
    ModelShape,
    Strategy,
    choose_strategy,
    estimate,
    estimate_grid,
    gib,
    insufficient_message,
    options_that_fit,
    quantity_bytes,
    setup_for,
)

if TYPE_CHECKING:
    from kubetune_operator.api import FineTuneJobSpec

log = logging.getLogger(__name__)


def read_model_shape(model_dir: Path) -> tuple[ModelShape | None, str]:
    """The model's dimensions from its config.json, or None and why (the estimator knows Llama-style
    decoders only: a model it cannot read is trained without a preflight, never refused for it)."""
    try:
        config = json.loads((model_dir / "config.json").read_text())
        return ModelShape.from_config(config), ""
    except (OSError, ValueError) as err:  # ModelConfigError is a ValueError
        reason = str(err) if isinstance(err, ModelConfigError) else f"config.json unreadable: {err}"
        return None, reason


def resolved_strategy(
    spec: FineTuneJobSpec, shape: ModelShape, device_memory: int, device: Device = "gpu"
) -> Strategy:
    """`distributed.strategy` with `auto` decided by the estimate (ddp when one device holds the job)."""
    if spec.distributed.strategy != "auto":
        return spec.distributed.strategy
    return choose_strategy(shape, setup_for(spec, device), device_memory)


def check_fits(
    spec: FineTuneJobSpec,
    shape: ModelShape,
    device_memory: int,
    source: str,
    *,
    device: Device = "gpu",
    strategy: Strategy | None = None,
) -> Estimate:
    """The job's estimate per device; InsufficientMemoryError (with the options that fit) when it does not
    fit `device_memory`. `strategy`: the one the trainer resolved (default: as `auto` would)."""
    strategy = strategy or resolved_strategy(spec, shape, device_memory, device)
    setup = setup_for(spec, device, strategy)
    result = estimate(shape, setup)
    if not result.fits(device_memory):
        options = options_that_fit(
            shape, setup, device_memory, processes_per_node=spec.resources.processes_per_node
        )
        raise InsufficientMemoryError(insufficient_message(result, device_memory, source, options))
    return result


def gpu_memory_of(spec: FineTuneJobSpec, override: str | None = None) -> tuple[int, str]:
    """Per-GPU memory for the dry run, and where it came from: --gpu-memory, then spec.resources.gpuMemory,
    then this machine's first GPU, else 80 GB (assumed, and said so)."""
    if override:
        return quantity_bytes(override), f"--gpu-memory {override}"
    if spec.resources.gpu_memory:
        return quantity_bytes(
            spec.resources.gpu_memory
        ), f"spec.resources.gpuMemory {spec.resources.gpu_memory}"
    local = local_gpu_memory()
    if local is not None:
        return local, "this machine's GPU"
    return DEFAULT_GPU_MEMORY, "an 80 GB GPU (assumed: no gpuMemory given and no GPU here)"


def local_gpu_memory() -> int | None:
    """Total memory of this process's GPU, None without one (torch is imported only here)."""
    # deferred: the dry run and the operator's estimate use this module without torch
    import torch  # noqa: PLC0415

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)


def memory_report(spec: FineTuneJobSpec, model_dir: Path, gpu_memory: str | None = None) -> dict[str, Any]:
    """The dry run's memory section: per-GPU estimates for ddp/fsdp x full/lora/qlora and what fits."""
    shape, why = read_model_shape(model_dir)
    if shape is None:
        return {"error": why}
    memory, source = gpu_memory_of(spec, gpu_memory)
    setup = setup_for(spec, "gpu", resolved_strategy(spec, shape, memory))
    rows = []
    for result in estimate_grid(shape, setup):
        mine = (result.setup.method, result.setup.strategy) == (setup.method, setup.strategy)
        supported = (result.setup.strategy, result.setup.method) not in UNSUPPORTED
        fits = result.fits(memory) and supported
        rows.append({**result.as_dict(), "fits": fits, "supported": supported, "job": mine})
    job = estimate(shape, setup)
    return {
        "deviceMemory": memory,
        "source": source,
        "parameters": shape.parameters,
        "worldSize": setup.world_size,
        "microBatch": setup.micro_batch,
        "maxSeqLength": setup.max_seq_length,
        "gradientCheckpointing": setup.gradient_checkpointing,
        "strategy": setup.strategy,
        "autoStrategy": spec.distributed.strategy == "auto",
        "rows": rows,
        "fits": job.fits(memory),
        "options": []
        if job.fits(memory)
        else options_that_fit(shape, setup, memory, processes_per_node=spec.resources.processes_per_node),
        "summary": f"{gib(job.total)} per GPU for this job",
    }


def check_before_loading(
    spec: FineTuneJobSpec, model_dir: Path, device_memory: int | None, strategy: Strategy | None = None
) -> Estimate | None:
    """The trainer's preflight, before any weight is read: InsufficientMemoryError when the job's estimate
    per device exceeds `device_memory` (the GPU's total memory; None on CPU, where RSS is bounded by the pod's
    memory limit rather than a device: no check). `strategy`: the one the trainer runs. A model the
    estimator cannot read is not refused."""
    shape, why = read_model_shape(model_dir)
    if shape is None:
        log.info("memory preflight skipped: %s", why)
        return None
    if device_memory is None:
        return None
    result = check_fits(spec, shape, device_memory, f"this GPU ({gib(device_memory)})", strategy=strategy)
    log.info(
        "memory preflight passed",
        extra={
            "estimateBytes": result.total,
            "deviceMemoryBytes": device_memory,
            "estimate": result.as_dict(),
        },
    )
    return result
