"""Training state in a checkpoint folder without pickles: safetensors for tensors, JSON for the rest.

Whoever can write under `output.uri/checkpoints/` must not be able to run code in the trainer (with its S3
credentials), so a resume never unpickles: no `torch.load`, no `accelerate.load_state` (which unpickles
RNG states with `weights_only=False`). A checkpoint folder holds

- `model.safetensors`: the trainable parameters (LoRA adapters, or every weight for full fine-tuning);
  frozen base weights come from the base model again.
- `optimizer.safetensors` + `optimizer.json`: the optimiser's per-parameter tensors; its param groups and
  non-tensor state.
- `scheduler.json`: the learning-rate scheduler's state dict (plain numbers).
- `rng-<rank>.safetensors` + `rng-<rank>.json`: each process's torch (and CUDA) generator states; Python's
  and NumPy's as JSON.

Resume refuses a folder that holds anything else that could be a pickle (`.bin`, `.pt`, `.pkl`, ...) or
misses one of these files (RNG files excepted: a run resumed with more processes has none for the new
ranks), with an error naming the file.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from kubetune_operator.data.errors import KubetuneError

FORMAT = "kubetune-train-state/1"
MODEL_FILE = "model.safetensors"
OPTIMIZER_TENSORS, OPTIMIZER_JSON = "optimizer.safetensors", "optimizer.json"
SCHEDULER_JSON = "scheduler.json"
FORMAT_JSON = "train-state.json"
# The sharded layout of strategy fsdp (sharded_state.py) has its own format name, so that each strategy
# refuses the other's checkpoints with a message that says so.
FSDP_FORMAT = "kubetune-train-state/fsdp-1"
STRATEGY_OF_FORMAT = {FORMAT: "ddp", FSDP_FORMAT: "fsdp"}
# Everything a checkpoint may hold; any other file (a pickle under any name) makes resume refuse it.
ALLOWED_SUFFIXES = (".safetensors", ".json")
log = logging.getLogger("kubetune_trainer")


class CheckpointFormatError(KubetuneError):
    """A checkpoint folder is not in the pickle-free format (old format, tampered or incomplete)."""


def rng_files(rank: int) -> tuple[str, str]:
    return f"rng-{rank}.safetensors", f"rng-{rank}.json"


# ------------------------------------------------------------------------------------------------ save
def save_model_and_optimizer(directory: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any) -> None:
    """Rank 0's part (DDP keeps these identical on every rank)."""
    directory.mkdir(parents=True, exist_ok=True)
    trainable = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trainable, str(directory / MODEL_FILE))

    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for param_id, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}/{name}"] = value.detach().contiguous().cpu()
            else:
                plain.setdefault(str(param_id), {})[name] = value
    save_file(tensors, str(directory / OPTIMIZER_TENSORS))
    write_json_file(directory / OPTIMIZER_JSON, {"paramGroups": state["param_groups"], "state": plain})
    write_json_file(directory / SCHEDULER_JSON, scheduler.state_dict())
    write_json_file(directory / FORMAT_JSON, {"format": FORMAT})


def save_rng(directory: Path, rank: int) -> None:
    """Every process's own generators (dropout draws differ per rank)."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda/{index}"] = cuda_state
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    plain = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, np.asarray(keys).tolist(), pos, has_gauss, cached],
    }
    tensor_name, json_name = rng_files(rank)
    save_file(tensors, str(directory / tensor_name))
    write_json_file(directory / json_name, plain)


# ------------------------------------------------------------------------------------------------ load
def check_folder(
    directory: Path,
    required: tuple[str, ...] = (FORMAT_JSON, MODEL_FILE, OPTIMIZER_TENSORS, OPTIMIZER_JSON, SCHEDULER_JSON),
    expected_format: str = FORMAT,
) -> None:
    """Refuse anything but our safetensors/JSON files, and a folder missing one of them."""
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative == "manifest.json":
            continue
        if not path.name.endswith(ALLOWED_SUFFIXES):
            raise CheckpointFormatError(
                f"checkpoint {directory}: refusing {relative!r}: only .safetensors and .json files are "
                "loaded on resume (pickles can run code); delete this checkpoint to start over"
            )
    has_format = (directory / FORMAT_JSON).is_file()
    found = read_json_file(directory / FORMAT_JSON).get("format") if has_format else None
    if found in STRATEGY_OF_FORMAT and found != expected_format:
        raise CheckpointFormatError(
            f"checkpoint {directory} was written with strategy {STRATEGY_OF_FORMAT[found]}, this run uses "
            f"{STRATEGY_OF_FORMAT[expected_format]}: set spec.distributed.strategy back, or delete the "
            "checkpoints to start over"
        )
    for name in required:
        if not (directory / name).is_file():
            raise CheckpointFormatError(
                f"checkpoint {directory}: {name} is missing (not a kubetune checkpoint)"
            )
    if found != expected_format:
        raise CheckpointFormatError(f"checkpoint {directory}: format {found!r}, expected {expected_format!r}")


def load_all(directory: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any, rank: int) -> None:
    """Restore what `save_model_and_optimizer` and `save_rng` wrote (each process its own RNG)."""
    check_folder(directory)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    weights = _load_tensors(directory / MODEL_FILE)
    if set(weights) != trainable:
        missing, extra = sorted(trainable - set(weights))[:3], sorted(set(weights) - trainable)[:3]
        raise CheckpointFormatError(
            f"checkpoint {directory}: its weights do not match this model (missing {missing}, extra {extra})"
        )
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, value in weights.items():
            params[name].copy_(value)

    saved = read_json_file(directory / OPTIMIZER_JSON)
    state: dict[int, dict[str, Any]] = {}
    for key, value in _load_tensors(directory / OPTIMIZER_TENSORS).items():
        param_id, name = key.split("/", 1)
        state.setdefault(int(param_id), {})[name] = value
    for param_id, entries in saved["state"].items():
        state.setdefault(int(param_id), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": saved["paramGroups"]})
    scheduler.load_state_dict(read_json_file(directory / SCHEDULER_JSON))
    load_rng(directory, rank)


def load_rng(directory: Path, rank: int) -> None:
    """This process's generators as `save_rng` wrote them (nothing when the checkpoint has none for it)."""
    tensor_name, json_name = rng_files(rank)
    if not (directory / tensor_name).is_file() or not (directory / json_name).is_file():
        # Resumed with more processes than saved: this rank's draws (dropout) start afresh, nothing else.
        log.warning("checkpoint has no RNG state for this rank", extra={"rank": rank})
        return
    tensors = _load_tensors(directory / tensor_name)
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda/{i}"] for i in range(sum(k.startswith("cuda/") for k in tensors))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    plain = read_json_file(directory / json_name)
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointFormatError(
            f"checkpoint file {path}: not a readable safetensors file ({error})"
        ) from None


def write_json_file(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple | set):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint's JSON: {value!r}")


def read_json_file(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointFormatError(f"checkpoint file {path}: not readable JSON ({error})") from None
    if not isinstance(payload, dict):
        raise CheckpointFormatError(f"checkpoint file {path}: expected a JSON object")
    return payload
