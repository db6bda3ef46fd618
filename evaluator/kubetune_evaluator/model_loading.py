"""Load the model to score from a local directory or an S3 prefix: a full model or a LoRA adapter.

A directory with adapter_config.json is a PEFT adapter: it is applied to its base model (the
EvalJob's baseline when given, else the base recorded in the adapter) and merged, so generation
runs at the speed of a plain model.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.shard import LOCAL_RANK_ENV
from kubetune_operator.data.digest import check_model_digest
from kubetune_operator.data.errors import UnsafeObjectKeyError
from kubetune_operator.data.storage import download_prefix, is_s3


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    uri: str
    digest: str  # sha256 over the weight files (and adapter), recorded in results.json
    adapter: bool


def fetch_model_dir(uri: str, storage: Any = None) -> Path:
    """A local directory holding the files under `uri` (S3 prefixes are downloaded to a temp dir)."""
    target = Path(".")
    if is_s3(uri):
        target = Path(tempfile.mkdtemp(prefix="kubetune-model-"))
        # Models are large: a local run must not leave copies behind in /tmp.
        atexit.register(shutil.rmtree, target, ignore_errors=True)
    try:
        return download_prefix(uri, target, storage)
    except (FileNotFoundError, UnsafeObjectKeyError) as error:
        raise EvalInputError(f"model {uri}: {error}") from None


def is_adapter_dir(directory: Path) -> bool:
    return (directory / "adapter_config.json").is_file()


def adapter_base(directory: Path) -> str | None:
    config = json.loads((directory / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    return str(base) if base else None


def load_model(
    uri: str,
    *,
    digest: str | None = None,
    base_uri: str | None = None,
    base_digest: str | None = None,
    storage: Any = None,
    field: str = "spec.model",
) -> LoadedModel:
    """Model + tokenizer in eval mode on CPU/GPU (float32 on CPU). `digest` pins the files under `uri`
    (`field` names where it was set), `base_digest` those under `base_uri` (the baseline, an adapter's
    base): checked before any weights are read (DigestMismatch)."""
    directory = fetch_model_dir(uri, storage)
    cuda = torch.cuda.is_available()
    # Several evaluator processes in one pod (processesPerNode) take one GPU each, by local rank.
    device = f"cuda:{int(os.environ.get(LOCAL_RANK_ENV) or 0) % torch.cuda.device_count()}" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    found = check_model_digest(directory, digest, f"{field}.digest ({uri})")
    if is_adapter_dir(directory):
        base = base_uri or adapter_base(directory)
        if base is None:
            raise EvalInputError(f"model {uri}: LoRA adapter without a base model; set spec.baseline.uri")
        base_dir = fetch_model_dir(base, storage)
        # The base named by the adapter itself is pinned only through the adapter's own digest.
        check_model_digest(base_dir, base_digest if base_uri else None, f"spec.baseline.digest ({base})")
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
        model = PeftModel.from_pretrained(model, directory).merge_and_unload()
        tokenizer_dir = directory if (directory / "tokenizer_config.json").is_file() else base_dir
        adapter = True
    else:
        if not (directory / "config.json").is_file():
            raise EvalInputError(
                f"model {uri}: no config.json or adapter_config.json (not a Hugging Face model)"
            )
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype)
        tokenizer_dir, adapter = directory, False
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model.to(device)  # type: ignore[arg-type]
    model.eval()  # type: ignore[no-untyped-call]
    return LoadedModel(model=model, tokenizer=tokenizer, uri=uri, digest=found, adapter=adapter)
