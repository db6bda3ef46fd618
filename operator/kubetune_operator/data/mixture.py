"""FLAN-style multi-task mixing: examples-proportional with a per-task cap, scaled by a per-task weight.

Task i contributes `round(weight_i * min(n_i, maxExamples_i))` training examples: a cap keeps a huge task
from drowning the small ones (FLAN's "examples-proportional mixing with a cap"), a weight > 1 up-samples a
task (its examples repeat, each pass reshuffled), < 1 down-samples it. The mixture is shuffled with the seed.
The items may be `Example`s or anything else (the token cache mixes example ids). No torch import.
Stable API: `TaskExamples`, `task_quota`, `mix_tasks`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from kubetune_operator.data.errors import ConfigError

T = TypeVar("T")


@dataclass
class TaskExamples(Generic[T]):
    name: str
    examples: Sequence[T]
    weight: float = 1.0
    max_examples: int | None = None


def task_quota(n: int, weight: float, max_examples: int | None) -> int:
    if weight < 0:
        raise ConfigError(f"task weight must be >= 0, got {weight}")
    capped = n if max_examples is None else min(n, max_examples)
    return round(weight * capped)


def _draw(examples: Sequence[T], count: int, rng: random.Random) -> list[T]:
    """`count` examples: whole reshuffled passes over the task, then a random part of one more."""
    out: list[T] = []
    while len(out) < count:
        batch = list(examples)
        rng.shuffle(batch)
        out.extend(batch[: count - len(out)])
    return out


def mix_tasks(tasks: Sequence[TaskExamples[T]], seed: int) -> list[T]:
    """The shuffled training mixture of all tasks."""
    rng = random.Random(seed)
    mixture: list[T] = []
    for task in tasks:
        quota = task_quota(len(task.examples), task.weight, task.max_examples)
        if quota and not task.examples:
            raise ConfigError(f"task {task.name!r} has no training examples")
        mixture.extend(_draw(task.examples, quota, rng))
    if not mixture:
        raise ConfigError("the training mixture is empty (all tasks have weight 0 or no rows)")
    rng.shuffle(mixture)
    return mixture
