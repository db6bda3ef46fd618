"""From a FineTuneJob spec to train/validation/test examples and the split manifest (no torch).

Per task (or the whole dataset when the job has no `tasks`): read the rows, split them by the dataset's split
seed, render every row of every part (so bad data fails *before* any training or output), then mix the
training parts FLAN-style. Validation and test keep every held-out row (weights and caps shape the training
mixture only).

Stable API: `PreparedData`, `prepare_data(spec)`, `task_examples(...)`, `storage_options(spec)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubetune_operator.data.datasets import Row, read_rows
from kubetune_operator.data.formats import Example, rows_to_examples
from kubetune_operator.data.mixture import TaskExamples, mix_tasks, task_quota
from kubetune_operator.data.split import SplitIndices, build_split_manifest, split_indices
from kubetune_operator.data.storage import StorageOptions
from kubetune_operator.data.templates import compile_templates

if TYPE_CHECKING:
    from kubetune_operator.api import DatasetSpec, FineTuneJobSpec, StorageSpec, TaskSpec

DEFAULT_TASK = "default"


@dataclass
class PreparedData:
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    manifest: dict[str, Any]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def storage_options(storage: StorageSpec | None) -> StorageOptions:
    if storage is None:
        return StorageOptions()
    return StorageOptions(endpoint=storage.endpoint, region=storage.region)


def task_examples(
    rows: list[Row], indices: SplitIndices, *, source: str, task: TaskSpec | None, fmt: str, seed: int
) -> dict[str, list[Example]]:
    """The examples of each part (train/validation/test) of one task."""
    name = task.name if task is not None else DEFAULT_TASK
    templates = compile_templates([(t.prompt, t.completion) for t in task.templates], name) if task else []
    return {
        part: rows_to_examples(
            rows,
            source=source,
            task=name,
            fmt=fmt,
            templates=templates,
            seed=seed,
            indices=indices.part(part),
        )
        for part in ("train", "validation", "test")
    }


def prepare_data(spec: FineTuneJobSpec) -> PreparedData:
    options = storage_options(spec.storage)
    cache: dict[str, list[Row]] = {}
    entries: list[tuple[TaskSpec | None, DatasetSpec]] = (
        [(task, task.dataset or spec.dataset) for task in spec.tasks]
        if spec.tasks
        else [(None, spec.dataset)]
    )
    mixture_inputs: list[TaskExamples[Example]] = []
    validation: list[Example] = []
    test: list[Example] = []
    manifest_tasks: list[dict[str, Any]] = []
    counts: dict[str, dict[str, int]] = {}
    for task, dataset in entries:
        if dataset.uri not in cache:
            cache[dataset.uri] = read_rows(dataset.uri, options)
        rows = cache[dataset.uri]
        split = dataset.split
        indices = split_indices(len(rows), split.validation, split.test, split.seed)
        parts = task_examples(
            rows, indices, source=dataset.uri, task=task, fmt=dataset.format, seed=split.seed
        )
        name = task.name if task is not None else DEFAULT_TASK
        weight = task.weight if task is not None else 1.0
        cap = task.max_examples if task is not None else None
        mixture_inputs.append(TaskExamples(name, parts["train"], weight, cap))
        validation.extend(parts["validation"])
        test.extend(parts["test"])
        manifest_tasks.append(
            {
                "name": name,
                "datasetUri": dataset.uri,
                "format": dataset.format,
                "numRows": len(rows),
                "indices": indices,
            }
        )
        counts[name] = {
            "rows": len(rows),
            "train": len(parts["train"]),
            "mixture": task_quota(len(parts["train"]), weight, cap),
            "validation": len(parts["validation"]),
            "test": len(parts["test"]),
        }
    seed = spec.hyperparameters.seed
    manifest = build_split_manifest(
        seed=spec.dataset.split.seed,
        validation=spec.dataset.split.validation,
        test=spec.dataset.split.test,
        tasks=manifest_tasks,
    )
    return PreparedData(
        train=mix_tasks(mixture_inputs, seed),
        validation=validation,
        test=test,
        manifest=manifest,
        counts=counts,
    )
