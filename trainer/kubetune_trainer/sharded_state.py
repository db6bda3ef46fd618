"""Checkpoints of `strategy: fsdp`: torch distributed checkpoint (DCP), in safetensors and JSON only.

A checkpoint folder (`<output.uri>/checkpoints/step-N/`) holds

- `dcp/shard-<rank+1>-model-00001-of-00001.safetensors`: what process `rank` owns of the trainable weights
  (`model/<name>`) and of AdamW's state (`optim/<name>/exp_avg`, `.../exp_avg_sq`, `.../step`), each
  tensor's offset within the full tensor recorded as JSON in the file's safetensors header. Every process
  writes its own file into its node's staging folder; each node's local rank 0 uploads its folder.
- `optimizer.json`: AdamW's param groups (hyperparameters and the parameter names of each group);
  `scheduler.json`; `rng-<rank>.*` (as train_state.py); `train-state.json` with the format
  `kubetune-train-state/fsdp-1`.

Loading reads the headers of all shard files and copies into each process just the slices it owns (DCP's
resharding), so a checkpoint written by 2 processes resumes on 1, 3 or 16 (another number of nodes).
DCP's default `FileSystemWriter` is not used: its `.metadata` file is a pickle, and so are its non-tensor
values; `HuggingFaceStorageWriter/Reader` keep everything in safetensors (the same no-pickle rule as
train_state.py: a resume never unpickles). For `method: lora` only the adapters are saved: the frozen base
comes from the base model again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.hf_storage import HuggingFaceStorageReader, HuggingFaceStorageWriter
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict
from torch.distributed.checkpoint.state_dict_loader import load
from torch.distributed.checkpoint.state_dict_saver import save

from kubetune_trainer.train_state import (
    FORMAT_JSON,
    FSDP_FORMAT,
    OPTIMIZER_JSON,
    SCHEDULER_JSON,
    CheckpointFormatError,
    check_folder,
    load_rng,
    read_json_file,
    save_rng,
    write_json_file,
)

DCP_DIR = "dcp"


def _tensors(model: torch.nn.Module, optimizer: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """This process's DTensors by checkpoint key (the very tensors of the model and the optimizer, so a
    load fills them in place), and the optimizer's param groups."""

    # named_parameters() lists a tied weight (embeddings = output layer) once, as the checkpoint should.
    tensors: dict[str, Any] = {
        f"model/{name}": param for name, param in model.named_parameters() if param.requires_grad
    }
    # Keyed by parameter name, not position; builds AdamW's (zero) state first when no step was taken.
    optim_state: Any = get_optimizer_state_dict(model, optimizer)
    for name, entries in optim_state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{name}/{key}"] = value
    return tensors, optim_state["param_groups"]


def save_sharded(directory: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any, rank: int) -> None:
    """Every process calls this (a collective): its shards, its RNG, and on rank 0 the JSON files."""

    directory.mkdir(parents=True, exist_ok=True)
    tensors, groups = _tensors(model, optimizer)
    writer = HuggingFaceStorageWriter(str(directory / DCP_DIR), save_distributed=True)
    save(tensors, storage_writer=writer)
    save_rng(directory, rank)
    if rank == 0:
        write_json_file(directory / OPTIMIZER_JSON, {"paramGroups": groups})
        write_json_file(directory / SCHEDULER_JSON, scheduler.state_dict())
        write_json_file(directory / FORMAT_JSON, {"format": FSDP_FORMAT})


def load_sharded(directory: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any, rank: int) -> None:
    """Every process calls this (a collective), with the model already sharded over this run's processes."""

    check_folder(directory, (FORMAT_JSON, OPTIMIZER_JSON, SCHEDULER_JSON), FSDP_FORMAT)
    shards = sorted((directory / DCP_DIR).glob("*.safetensors")) if (directory / DCP_DIR).is_dir() else []
    if not shards:
        raise CheckpointFormatError(f"checkpoint {directory}: no shard files under {DCP_DIR}/")
    tensors, _ = _tensors(model, optimizer)
    reader = HuggingFaceStorageReader(str(directory / DCP_DIR))
    saved = set(reader.read_metadata().state_dict_metadata)
    if saved != set(tensors):
        missing, extra = sorted(set(tensors) - saved)[:3], sorted(saved - set(tensors))[:3]
        raise CheckpointFormatError(
            f"checkpoint {directory}: its tensors do not match this model (missing {missing}, extra {extra})"
        )
    with torch.no_grad():
        load(tensors, storage_reader=reader)
    optim_state: Any = get_optimizer_state_dict(model, optimizer)  # now holding the loaded tensors
    groups = read_json_file(directory / OPTIMIZER_JSON)["paramGroups"]
    set_optimizer_state_dict(model, optimizer, {"state": optim_state["state"], "param_groups": groups})
    scheduler.load_state_dict(read_json_file(directory / SCHEDULER_JSON))
    load_rng(directory, rank)
