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


# One solved example as lm-eval's build_qa_turn builds it: the user text (the rendered prompt), the target
# delimiter, the assistant text (the correct choice or completion). As plain text the three are joined;
# with a chat template they are a user and an assistant turn (kubetune_evaluator.chat_prompts).
Turn = tuple[str, str, str]


@dataclass(frozen=True)
class FewshotPool:
    """The examples to draw from: their rows (compared to exclude a question) and rendered questions."""

    rows: Sequence[Mapping[str, Any]]
    questions: Sequence[ChoiceQuestion] = ()
    where: str = "few-shot pool"  # names the pool in errors
    turns: Sequence[Turn] = ()  # generation and benchmark pools: each example's turn, rendered

    def turn(self, position: int) -> Turn:
        if self.turns:
            return self.turns[position]
        question = self.questions[position]
        return question.prompt, TARGET_DELIMITER, question.choices[question.answer]


def example_turn(question: ChoiceQuestion) -> Turn:
    return question.prompt, TARGET_DELIMITER, question.choices[question.answer]


def completion_turn(prompt: str, completion: str) -> Turn:
    """A generation example: the completion's leading whitespace is the target delimiter (a completion
    template " {{ answer }}" is lm-eval's doc_to_target after target_delimiter " ")."""
    answer = completion.lstrip()
    return prompt, completion[: len(completion) - len(answer)], answer


def join_examples(turns: Sequence[Turn], delimiter: str) -> str:
    """The plain-text context: each example's prompt, target delimiter, answer and the few-shot delimiter."""
    return "".join(user + between + answer + delimiter for user, between, answer in turns)


def example_text(question: ChoiceQuestion, delimiter: str) -> str:
    """One solved example: its prompt, the target delimiter, its correct choice, the few-shot delimiter."""
    return join_examples([example_turn(question)], delimiter)


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


def fewshot_examples(
    rows: Sequence[Mapping[str, Any]], pool: FewshotPool, *, n: int, seed: int, same_split: bool
) -> list[list[Turn]]:
    """The `n` drawn examples of each scored sample (`rows[i]` is sample i's row), in prompt order.

    `same_split`: the pool is the very split being scored, so each sample's own row is left out.
    """
    needed = n + 1 if same_split else n
    if len(pool.rows) < needed:
        raise EvalInputError(
            f"{pool.where}: {len(pool.rows)} few-shot examples, but numFewshot {n} needs at least {needed}"
        )
    rng = random.Random(seed)
    return [[pool.turn(i) for i in draw(rng, pool, n, row if same_split else None)] for row in rows]


def fewshot_contexts(
    rows: Sequence[Mapping[str, Any]],
    pool: FewshotPool,
    *,
    n: int,
    seed: int,
    delimiter: str,
    same_split: bool,
) -> list[str]:
    """The plain text put before each scored sample's prompt (`fewshot_examples`, joined)."""
    return [
        join_examples(turns, delimiter)
        for turns in fewshot_examples(rows, pool, n=n, seed=seed, same_split=same_split)
    ]


def shots_label(fewshot: FewshotSpec, pool: str | None = None) -> str:
    """How the prompts were built, for the accuracy signature (kept short: it goes into status).
    `pool` names where the examples came from when not `fewshot.uri` or `fewshot.split` (benchmarks)."""
    if not fewshot.num_fewshot:
        return "0-shot"
    pool = pool or ("fewshot.uri" if fewshot.uri else f"{fewshot.split} rows")
    return f"{fewshot.num_fewshot}-shot(seed {fewshot.seed}, from {pool})"
