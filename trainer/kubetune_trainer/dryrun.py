"""`kubetune train --dry-run`: what the data will look like to the model, without training.

Counts per task and split, a token-length histogram, truncation counts, a token-level preview of the
first examples marking the tokens that carry loss, and the memory estimate per GPU for ddp/fsdp x
full/lora/qlora (from config.json alone: no weights are downloaded). Fails when an example has no supervised
token.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubetune_operator.data.errors import DataError
from kubetune_operator.data.pipeline import prepare_data, storage_options
from kubetune_operator.data.storage import MODEL_WEIGHT_SUFFIXES, download_prefix
from kubetune_trainer.preflight import memory_report
from kubetune_trainer.tokenization import IGNORE_INDEX, TokenizedExample, tokenize_examples

if TYPE_CHECKING:
    from kubetune_operator.api import FineTuneJob

HISTOGRAM_BINS = 8


def length_histogram(
    lengths: list[int], max_len: int, bins: int = HISTOGRAM_BINS
) -> list[tuple[int, int, int]]:
    """(low, high, count) buckets of equal width over 1..max_len."""
    width = max(1, -(-max_len // bins))
    out = []
    for b in range(bins):
        low, high = b * width + 1, min((b + 1) * width, max_len)
        out.append((low, high, sum(1 for n in lengths if low <= n <= high)))
    return out


def token_preview(tokenizer: Any, example: TokenizedExample) -> list[tuple[str, bool]]:
    """(token text, carries loss) for each token."""
    pieces = [tokenizer.decode([t]) for t in example.input_ids]
    return [(piece, label != IGNORE_INDEX) for piece, label in zip(pieces, example.labels, strict=True)]


def _tokenizer_dir(job: FineTuneJob, scratch: Path) -> Path:
    """The tokenizer files only: a dry run should not download gigabytes of weights."""
    return download_prefix(
        job.spec.model.uri, scratch, storage_options(job.spec.storage), skip_suffixes=MODEL_WEIGHT_SUFFIXES
    )


def dry_run_report(job: FineTuneJob, preview: int = 3, gpu_memory: str | None = None) -> dict[str, Any]:
    """Everything the dry run prints, as data (the CLI renders it). `gpu_memory`: a quantity that overrides
    spec.resources.gpuMemory for the memory estimate."""
    # deferred: modeling imports torch and transformers' model classes; only a dry run with a tokenizer
    # to read needs them
    from kubetune_trainer.modeling import load_tokenizer  # noqa: PLC0415

    data = prepare_data(job.spec)
    max_len = job.spec.hyperparameters.max_seq_length
    with tempfile.TemporaryDirectory(prefix="kubetune-dry-run-") as scratch:
        model_dir = _tokenizer_dir(job, Path(scratch))
        memory = memory_report(job.spec, model_dir, gpu_memory)
        tokenizer = load_tokenizer(model_dir)
    report: dict[str, Any] = {"counts": data.counts, "splits": {}, "preview": [], "memory": memory}
    tokenized_train: list[TokenizedExample] = []
    for part, examples in (("train", data.train), ("validation", data.validation), ("test", data.test)):
        tokenized, stats = tokenize_examples(tokenizer, examples, max_len, part)
        for example in tokenized:
            if example.completion_tokens == 0:
                raise DataError(f"task {example.task!r} row {example.row + 1}: no token carries loss")
        if part == "train":
            tokenized_train = tokenized
        report["splits"][part] = {
            "examples": len(tokenized),
            "truncation": stats.as_dict(),
            "histogram": length_histogram(stats.lengths, max_len),
            "tokens": sum(stats.lengths),
            "completionTokens": sum(e.completion_tokens for e in tokenized),
        }
    report["preview"] = [
        {"task": e.task, "row": e.row, "tokens": token_preview(tokenizer, e)}
        for e in tokenized_train[:preview]
    ]
    return report
