"""Read, render and tokenize a job's data once per job, and keep the tokens under `output.uri`.

Rank 0 builds the cache in one streaming pass per task: rows are read file by file (a local JSONL line by
line), rendered (templates or `dataset.format`), tokenized in batches by the fast tokenizer, and appended to
one memory-mapped store (`token_store.py`) with the rendered text of each row beside it. Only then is the
number of rows known, so the split (`split.py`: it depends on the row count) and the FLAN mixture
(`mixture.py`) are computed on example ids, and the held-out rows' text is copied into `split/test.jsonl`
and `split/validation.jsonl`. Memory stays bounded by the batch, not the dataset.

Where: `<output.uri>/split/tokens/<key>/`; the key hashes everything the tokens depend on (the datasets'
files with their sizes and ETag/mtime, formats, templates, weights, caps, split, seed, maxSeqLength, the
tokenizer's files, this module's version); a new build removes the caches of other keys. Rank 0 builds it
in the node's work dir, so bad data never leaves a partial cache under output.uri; a local output then gets
the finished directory moved in and is read in place, an S3 output gets it uploaded and every node's first
process downloads it. So a restarted pod (or a resume on other nodes) reads tokens instead of rows, and an
EvalJob can read the test tokens. The `.complete` marker is written last: a cache without it is rebuilt.

Stable API: `TokenData`, `prepare_token_data(...)`, `cache_key(...)`, `CACHE_DIR`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kubetune_operator.data.datasets import dataset_files, iter_file_rows
from kubetune_operator.data.errors import DataError
from kubetune_operator.data.formats import FORMATS, Example, row_to_example
from kubetune_operator.data.mixture import TaskExamples, mix_tasks, task_quota
from kubetune_operator.data.pipeline import DEFAULT_TASK, storage_options
from kubetune_operator.data.split import build_split_manifest, split_indices, split_manifest_uri
from kubetune_operator.data.storage import (
    StorageOptions,
    delete_prefix,
    download_prefix,
    exists,
    is_s3,
    join_uri,
    list_files,
    local_path,
    s3_client,
    split_s3_uri,
    upload_dir,
    with_retries,
    write_json,
    write_text,
)
from kubetune_operator.data.templates import compile_templates, render_row
from kubetune_trainer.token_store import ExampleStore, StoreWriter
from kubetune_trainer.tokenization import TOKENIZE_BATCH, TruncationStats, tokenize_batch

if TYPE_CHECKING:
    from kubetune_operator.api import DatasetSpec, FineTuneJobSpec, TaskSpec

log = logging.getLogger(__name__)

CACHE_VERSION = 1
CACHE_DIR = "split/tokens"  # beside the split files: what readers of the model prefix already skip
COMPLETE = ".complete"
# Files of a model directory that define its tokenizer (hashed into the key); weights are never read.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "chat_template.jinja",
    "chat_template.json",
)


@dataclass
class TokenData:
    """A job's tokenized data: the training mixture, validation and test (memory-mapped), and metadata."""

    train: ExampleStore
    validation: ExampleStore
    test: ExampleStore
    manifest: dict[str, Any]
    counts: dict[str, dict[str, int]]
    truncation: TruncationStats
    directory: Path
    uri: str
    reused: bool

    def write_split_files(self, output_uri: str, options: StorageOptions) -> None:
        """`split/manifest.json`, `split/test.jsonl` and `split/validation.jsonl` under the job's output."""
        write_json(split_manifest_uri(output_uri), self.manifest, options)
        for part in ("test", "validation"):
            target = join_uri(output_uri, "split", f"{part}.jsonl")
            source = self.directory / "split" / f"{part}.jsonl"
            if is_s3(target):
                bucket, key = split_s3_uri(target)
                client = s3_client(options)
                with_retries(target, partial(client.upload_file, str(source), bucket, key))
            else:
                local_path(target).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, local_path(target))


@dataclass(frozen=True)
class Sync:
    """How the processes of a job coordinate (accelerate's, or trivial for one process)."""

    is_main: bool = True
    is_local_main: bool = True
    barrier: Callable[[], None] = lambda: None


def _entries(spec: FineTuneJobSpec) -> list[tuple[TaskSpec | None, DatasetSpec]]:
    if spec.tasks:
        return [(task, task.dataset or spec.dataset) for task in spec.tasks]
    return [(None, spec.dataset)]


def _file_stamp(uri: str, options: StorageOptions) -> list[Any]:
    """What identifies a file's content without reading it: size and ETag (S3) or mtime (local)."""
    if is_s3(uri):
        bucket, key = split_s3_uri(uri)
        client = s3_client(options)
        head = with_retries(uri, lambda: client.head_object(Bucket=bucket, Key=key))
        return [uri, head["ContentLength"], head.get("ETag", "")]
    stat = os.stat(local_path(uri))
    return [uri, stat.st_size, stat.st_mtime_ns]


def cache_key(spec: FineTuneJobSpec, model_dir: Path, options: StorageOptions) -> str:
    """A hash of everything the cached tokens depend on (see the module docstring)."""
    datasets = {dataset.uri for _, dataset in _entries(spec)}
    tokenizer = hashlib.sha256()
    for name in TOKENIZER_FILES:
        path = model_dir / name
        if path.is_file():
            tokenizer.update(name.encode() + b"\0" + path.read_bytes())
    payload = {
        "version": CACHE_VERSION,
        "files": {
            uri: [_file_stamp(f, options) for f in dataset_files(uri, options)] for uri in sorted(datasets)
        },
        "dataset": spec.dataset.model_dump(mode="json", by_alias=True),
        "tasks": [t.model_dump(mode="json", by_alias=True) for t in spec.tasks],
        "seed": spec.hyperparameters.seed,
        "maxSeqLength": spec.hyperparameters.max_seq_length,
        "tokenizer": tokenizer.hexdigest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _task_rows(
    uri: str, options: StorageOptions, fmt: str, task: TaskSpec | None, seed: int
) -> Iterator[Example]:
    """Every row of a dataset rendered as an example, streamed (the same rendering as `rows_to_examples`)."""
    if fmt not in FORMATS:
        raise DataError(f"{uri}: unknown dataset format {fmt!r} (one of {', '.join(FORMATS)})")
    name = task.name if task is not None else DEFAULT_TASK
    templates = compile_templates([(t.prompt, t.completion) for t in task.templates], name) if task else []
    # The template draw of row i is the i-th number of this stream, whatever the split (formats.py).
    rng = random.Random(f"{seed}:{name}")
    index = 0
    for file_uri in dataset_files(uri, options):
        for row in iter_file_rows(file_uri, options):
            where = f"{uri}: row {index + 1}"
            if templates:
                prompt, completion = render_row(templates, row, random.Random(rng.random()), where)
                if not completion.strip():
                    raise DataError(f"{where}: empty completion after rendering the template")
                yield Example(prompt=prompt, completion=completion, task=name, row=index)
            else:
                yield row_to_example(row, fmt, name, index, where)
            index += 1


def _batches(examples: Iterator[Example], size: int) -> Iterator[list[Example]]:
    batch: list[Example] = []
    for example in examples:
        batch.append(example)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def build_cache(spec: FineTuneJobSpec, tokenizer: Any, directory: Path, options: StorageOptions) -> None:
    """Write the cache's files into `directory` (the caller marks it complete)."""
    shutil.rmtree(directory, ignore_errors=True)
    entries = _entries(spec)
    names = [task.name if task is not None else DEFAULT_TASK for task, _ in entries]
    max_len = spec.hyperparameters.max_seq_length
    writer = StoreWriter(directory / "store", names)
    text_offsets = array("q")  # byte offset of each example's rendered line: 8 bytes per row
    stats = TruncationStats()
    mixture_inputs: list[TaskExamples[int]] = []
    validation: list[int] = []
    test: list[int] = []
    manifest_tasks: list[dict[str, Any]] = []
    counts: dict[str, dict[str, int]] = {}
    with (directory / "rendered.jsonl").open("wb") as rendered:
        for (task, dataset), name in zip(entries, names, strict=True):
            first = writer.count
            for batch in _batches(
                _task_rows(dataset.uri, options, dataset.format, task, dataset.split.seed), TOKENIZE_BATCH
            ):
                # Lengths are not kept per example here (a million ints): the store has them.
                batch_stats = TruncationStats()
                for tokenized in tokenize_batch(tokenizer, batch, max_len, batch_stats):
                    writer.add(tokenized)
                for example in batch:
                    text_offsets.append(rendered.tell())
                    rendered.write(json.dumps(example.to_json()).encode() + b"\n")
                stats.examples += batch_stats.examples
                stats.prompt_truncated += batch_stats.prompt_truncated
                stats.completion_truncated += batch_stats.completion_truncated
            n = writer.count - first
            split = dataset.split
            indices = split_indices(n, split.validation, split.test, split.seed)
            weight = task.weight if task is not None else 1.0
            cap = task.max_examples if task is not None else None
            mixture_inputs.append(TaskExamples(name, [first + i for i in indices.train], weight, cap))
            validation.extend(first + i for i in indices.validation)
            test.extend(first + i for i in indices.test)
            manifest_tasks.append(
                {
                    "name": name,
                    "datasetUri": dataset.uri,
                    "format": dataset.format,
                    "numRows": n,
                    "indices": indices,
                }
            )
            counts[name] = {
                "rows": n,
                "train": len(indices.train),
                "mixture": task_quota(len(indices.train), weight, cap),
                "validation": len(indices.validation),
                "test": len(indices.test),
            }
    writer.close()
    train = mix_tasks(mixture_inputs, spec.hyperparameters.seed)
    for part, ids in (("train", train), ("validation", validation), ("test", test)):
        np.save(directory / f"{part}.npy", np.asarray(ids, dtype=np.int64))
    _write_held_out(directory, text_offsets, {"validation": validation, "test": test})
    (directory / "rendered.jsonl").unlink()
    manifest = build_split_manifest(
        seed=spec.dataset.split.seed,
        validation=spec.dataset.split.validation,
        test=spec.dataset.split.test,
        tasks=manifest_tasks,
    )
    meta = {
        "version": CACHE_VERSION,
        "tasks": names,
        "counts": counts,
        "truncation": stats.as_dict(),
        "manifest": manifest,
    }
    (directory / "meta.json").write_text(json.dumps(meta))


def _write_held_out(directory: Path, offsets: Sequence[int], parts: dict[str, list[int]]) -> None:
    """Copy the rendered lines of the held-out examples into split/<part>.jsonl (file order)."""
    (directory / "split").mkdir(exist_ok=True)
    with (directory / "rendered.jsonl").open("rb") as rendered:
        for part, ids in parts.items():
            with (directory / "split" / f"{part}.jsonl").open("wb") as out:
                for example_id in ids:
                    rendered.seek(offsets[example_id])
                    out.write(rendered.readline())


def open_cache(directory: Path, uri: str, reused: bool) -> TokenData:
    meta = json.loads((directory / "meta.json").read_text())
    store = ExampleStore(directory / "store", meta["tasks"])
    truncation = TruncationStats(
        examples=meta["truncation"]["examples"],
        prompt_truncated=meta["truncation"]["promptTruncated"],
        completion_truncated=meta["truncation"]["completionTruncated"],
    )

    def part(name: str) -> ExampleStore:
        return store.view(np.load(directory / f"{name}.npy"))

    return TokenData(
        train=part("train"),
        validation=part("validation"),
        test=part("test"),
        manifest=meta["manifest"],
        counts=meta["counts"],
        truncation=truncation,
        directory=directory,
        uri=uri,
        reused=reused,
    )


def _prune_other_caches(output_uri: str, key: str, options: StorageOptions) -> None:
    """Remove the caches of other keys under this output: one job owns an output (output_owner.py), and a
    cache of its earlier spec or data is never read again."""
    root = join_uri(output_uri, CACHE_DIR)
    if not is_s3(root):
        for stale in local_path(root).iterdir():
            if stale.name != key:
                shutil.rmtree(stale, ignore_errors=True)
        return
    stale_keys = {f.removeprefix(root + "/").split("/")[0] for f in list_files(root, options)} - {key}
    for stale_key in sorted(stale_keys):
        delete_prefix(join_uri(root, stale_key) + "/", options)


def prepare_token_data(
    spec: FineTuneJobSpec, tokenizer: Any, model_dir: Path, work_dir: Path, sync: Sync | None = None
) -> TokenData:
    """The job's tokenized data: read from the cache under output.uri, or built once by rank 0 first.

    Every process calls this; the main process builds (and uploads) while the others wait at `sync.barrier`.
    """
    sync = sync or Sync()
    options = storage_options(spec.storage)
    key = cache_key(spec, model_dir, options)
    uri = join_uri(spec.output.uri, CACHE_DIR, key)
    remote = is_s3(uri)
    # Built in node-local scratch: bad data fails there, and nothing is written under output.uri.
    build_dir = work_dir / CACHE_DIR / key
    directory = build_dir if remote else local_path(uri)
    reused = exists(join_uri(uri, COMPLETE), options)
    if sync.is_main and not reused:
        log.info("tokenizing the dataset into the token cache", extra={"uri": uri})
        try:
            build_cache(spec, tokenizer, build_dir, options)
        except BaseException:
            shutil.rmtree(build_dir, ignore_errors=True)
            raise
        if remote:
            upload_dir(build_dir, uri, options)
        else:
            shutil.rmtree(directory, ignore_errors=True)
            directory.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(build_dir, directory)
        # .complete last: a reader never trusts a cache whose upload or move was cut short.
        write_text(join_uri(uri, COMPLETE), "", options)
        (directory / COMPLETE).write_text("")
        _prune_other_caches(spec.output.uri, key, options)
    sync.barrier()
    if remote and sync.is_local_main and not (directory / COMPLETE).exists():
        shutil.rmtree(directory, ignore_errors=True)
        download_prefix(uri, directory, options)
    sync.barrier()
    if reused:
        log.info("token cache reused", extra={"uri": uri})
    return open_cache(directory, uri, reused)
