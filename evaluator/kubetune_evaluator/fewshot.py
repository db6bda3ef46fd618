"""Few-shot contexts for multiple-choice and generation tasks, drawn exactly as lm-evaluation-harness
draws them.

lm-eval (`lm_eval/api/samplers.py`, ContextSampler) keeps one `random.Random(seed)` per task and, for
each question in turn, samples `n` examples from the few-shot pool; when the pool is the split being
scored it samples `n + 1` and drops the question itself. A multiple-choice example is rendered as
`prompt + " " + correct choice + delimiter`, a generation example as `prompt + completion + delimiter`
(the rendered templates: a completion template " {{ answer }}" gives lm-eval's target delimiter), and
the question's prompt follows the last one. Drawing
positions (`random.sample` over `range(len(pool))`) picks the same elements as sampling the pool
itself, so the same seed and order give lm-eval's examples.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.metrics.choice_accuracy import TARGET_DELIMITER, ChoiceQuestion

if TYPE_CHECKING:
    from kubetune_operator.api import FewshotSpec


@dataclass(frozen=True)
class FewshotPool:
    """The examples to draw from: their rows (compared to exclude a question) and rendered questions."""

    rows: Sequence[Mapping[str, Any]]
    questions: Sequence[ChoiceQuestion] = ()
    where: str = "few-shot pool"  # names the pool in errors
    texts: Sequence[str] = ()  # generation tasks: each example's prompt + completion, rendered

    def example(self, position: int, delimiter: str) -> str:
        if self.texts:
            return self.texts[position] + delimiter
        return example_text(self.questions[position], delimiter)


def example_text(question: ChoiceQuestion, delimiter: str) -> str:
    """One solved example: its prompt, the target delimiter, its correct choice, the few-shot delimiter."""
    return question.prompt + TARGET_DELIMITER + question.choices[question.answer] + delimiter


def draw(rng: random.Random, pool: FewshotPool, n: int, exclude: Mapping[str, Any] | None) -> list[int]:
    """Positions in the pool of `n` examples; `exclude` (the question's own row) is never among them."""
    size = len(pool.rows)
    if exclude is None:
        return rng.sample(range(size), n)
    drawn = [i for i in rng.sample(range(size), n + 1) if pool.rows[i] != exclude][:n]
    if len(drawn) < n:
        # Rows equal to the question were drawn more than once: draw again from the pool without them.
        others = [i for i in range(size) if pool.rows[i] != exclude]
        if len(others) < n:
            raise EvalInputError(f"{pool.where}: fewer than {n} few-shot examples differ from the question")
        drawn = [others[j] for j in rng.sample(range(len(others)), n)]
    return drawn


def fewshot_contexts(
    rows: Sequence[Mapping[str, Any]],
    pool: FewshotPool,
    *,
    n: int,
    seed: int,
    delimiter: str,
    same_split: bool,
) -> list[str]:
    """The text put before each scored sample's prompt: `n` drawn examples (`rows[i]` is sample i's row).

    `same_split`: the pool is the very split being scored, so each sample's own row is left out.
    """
    needed = n + 1 if same_split else n
    if len(pool.rows) < needed:
        raise EvalInputError(
            f"{pool.where}: {len(pool.rows)} few-shot examples, but numFewshot {n} needs at least {needed}"
        )
    rng = random.Random(seed)
    return [
        "".join(pool.example(i, delimiter) for i in draw(rng, pool, n, row if same_split else None))
        for row in rows
    ]


def shots_label(fewshot: FewshotSpec) -> str:
    """How the prompts were built, for the accuracy signature (kept short: it goes into status)."""
    if not fewshot.num_fewshot:
        return "0-shot"
    pool = "fewshot.uri" if fewshot.uri else f"{fewshot.split} rows"
    return f"{fewshot.num_fewshot}-shot(seed {fewshot.seed}, from {pool})"
