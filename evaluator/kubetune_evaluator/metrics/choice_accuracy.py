"""Multiple-choice accuracy by log-likelihood (MMLU-style), as lm-evaluation-harness computes it.

For each question, every choice is scored by the summed log-probability of " " + choice (lm-eval's
target delimiter; the choice keeps its own whitespace) given the prompt; `accuracy` takes the argmax,
`accuracyNorm` divides by the choice's length in characters first (lm-eval's acc_norm), which removes
the bias towards long answers. Tokenization, truncation and batching: `kubetune_evaluator.loglikelihood`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubetune_evaluator.loglikelihood import TokenPair, encode_pairs, pair_loglikelihoods
from kubetune_evaluator.metrics.series import MetricOutput, ScoreSeries

TARGET_DELIMITER = " "


@dataclass(frozen=True)
class ChoiceQuestion:
    prompt: str  # the whole context scored, few-shot examples included
    choices: tuple[str, ...]
    answer: int  # index into choices
    # Between the prompt and each choice: a space (lm-eval's target_delimiter); none after a chat
    # template's generation prompt (lm-eval with apply_chat_template).
    delimiter: str = TARGET_DELIMITER


def continuation_of(choice: str, delimiter: str = TARGET_DELIMITER) -> str:
    """The text scored after the prompt: the delimiter, then the choice exactly as given."""
    return delimiter + choice


def accuracy_signature(shots: str = "0-shot", chat: str = "", *, templated: bool | None = None) -> str:
    """`chat`: how the prompts were rendered ('' for plain text as set: the signature says so);
    `templated`: whether they went through the chat template (default: `chat` is not '')."""
    templated = bool(chat) if templated is None else templated
    continuation = "continuation:choice" if templated else "continuation:' '+choice"
    prompting = f"{chat or 'no-chat-template'}|{continuation}"
    return (
        f"accuracy|loglikelihood as lm-eval hf|{shots}|{prompting}|truncation:left"
        "|acc_norm:logprob/len(choice chars)"
    )


def _argmax(values: Sequence[float]) -> int:
    # The first of equal maxima, as numpy.argmax (lm-eval) picks.
    return max(range(len(values)), key=values.__getitem__)


def score_multiple_choice(
    model: Any,
    tokenizer: Any,
    questions: Sequence[ChoiceQuestion],
    batch_size: int = 16,
    on_question: Callable[[int], None] | None = None,
    *,
    max_length: int | None = None,
    shots: str = "0-shot",
) -> tuple[MetricOutput, list[list[float]]]:
    """`accuracy` and `accuracyNorm`, plus every choice's log-likelihood (kept per sample).

    `shots` describes the few-shot prompting for the signature. `on_question` advances by questions;
    requests run longest first, so it counts the share of requests done, in questions.
    """
    pairs = choice_pairs(tokenizer, questions)
    reported = done = 0

    def on_batch(count: int) -> None:
        nonlocal reported, done
        done += count
        reached = done * len(questions) // len(pairs)
        if on_question is not None and reached > reported:
            on_question(reached - reported)
        reported = reached

    flat = pair_loglikelihoods(
        model, tokenizer, pairs, batch_size=batch_size, max_length=max_length, on_batch=on_batch
    )
    return choice_scores(questions, flat, shots)


def choice_pairs(tokenizer: Any, questions: Sequence[ChoiceQuestion]) -> list[TokenPair]:
    """The log-likelihood requests of the questions: every choice of each in turn."""
    return encode_pairs(
        tokenizer,
        [
            (question.prompt, continuation_of(choice, question.delimiter))
            for question in questions
            for choice in question.choices
        ],
    )


def choice_scores(
    questions: Sequence[ChoiceQuestion],
    flat: Sequence[float],
    shots: str = "0-shot",
    chat: str = "",
    *,
    templated: bool | None = None,
) -> tuple[MetricOutput, list[list[float]]]:
    """`accuracy` and `accuracyNorm` from every choice's log-likelihood (`choice_pairs` order); `chat` and
    `templated` as for `accuracy_signature`."""
    correct: list[float] = []
    correct_norm: list[float] = []
    per_question: list[list[float]] = []
    offset = 0
    for question in questions:
        scores = list(flat[offset : offset + len(question.choices)])
        offset += len(question.choices)
        per_question.append(scores)
        # lm-eval divides by len(choice): the raw choice text, without the delimiter.
        normalised = [s / max(len(c), 1) for s, c in zip(scores, question.choices, strict=True)]
        correct.append(float(_argmax(scores) == question.answer))
        correct_norm.append(float(_argmax(normalised) == question.answer))
    output = MetricOutput(
        scores={
            "accuracy": ScoreSeries.from_mean(correct),
            "accuracyNorm": ScoreSeries.from_mean(correct_norm),
        },
        signature=accuracy_signature(shots, chat, templated=templated),
    )
    return output, per_question
