"""Multiple-choice accuracy by log-likelihood (MMLU-style), as lm-evaluation-harness computes it.

For each question, every choice is scored by the summed log-probability of its continuation
tokens given the prompt; `accuracy` takes the argmax, `accuracyNorm` divides by the continuation's
length in characters first (lm-eval's acc_norm), which removes the bias towards short answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from kubetune_evaluator.metrics.series import MetricOutput, ScoreSeries


@dataclass(frozen=True)
class ChoiceQuestion:
    prompt: str
    choices: tuple[str, ...]
    answer: int  # index into choices


def continuation_of(choice: str) -> str:
    """The text scored after the prompt: the choice with one leading space (lm-eval's target delimiter)."""
    return " " + choice.strip()


def split_context_continuation(
    tokenizer: Any, context: str, continuation: str
) -> tuple[list[int], list[int]]:
    """Token ids of context and continuation, tokenized together as lm-eval does.

    Trailing spaces of the context move to the continuation, and the pair is tokenized as one string
    so the continuation gets the tokens it has in running text (BPE merges across the boundary).
    """
    stripped = context.rstrip(" ")
    continuation = context[len(stripped) :] + continuation
    whole = tokenizer(stripped + continuation, add_special_tokens=True)["input_ids"]
    context_ids = tokenizer(stripped, add_special_tokens=True)["input_ids"]
    return list(whole[: len(context_ids)]), list(whole[len(context_ids) :])


@torch.inference_mode()
def continuation_logprobs(
    model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], batch_size: int = 16
) -> list[float]:
    """Summed log P(continuation | context) for each (context, continuation) pair."""
    encoded = [split_context_continuation(tokenizer, context, cont) for context, cont in pairs]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    results: list[float] = []
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start : start + batch_size]
        sequences = [ctx + cont for ctx, cont in batch]
        width = max(len(seq) for seq in sequences)
        # Right padding: positions of the real tokens stay 0..n-1, identical to an unpadded forward pass.
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            input_ids[row, : len(seq)] = torch.tensor(seq)
            attention[row, : len(seq)] = 1
        logits = model(input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device)).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for row, (ctx, cont) in enumerate(batch):
            positions = torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1)
            targets = torch.tensor(cont)
            results.append(float(logprobs[row, positions, targets].sum()))
    return results


def accuracy_signature() -> str:
    return "accuracy|loglikelihood|continuation:' '+choice|acc_norm:logprob/len(choice chars)"


def score_multiple_choice(
    model: Any,
    tokenizer: Any,
    questions: Sequence[ChoiceQuestion],
    batch_size: int = 16,
    on_question: Callable[[int], None] | None = None,
) -> tuple[MetricOutput, list[list[float]]]:
    """`accuracy` and `accuracyNorm`, plus every choice's log-likelihood (kept per sample)."""
    pairs = [(q.prompt, continuation_of(choice)) for q in questions for choice in q.choices]
    flat = continuation_logprobs(model, tokenizer, pairs, batch_size=batch_size)
    correct: list[float] = []
    correct_norm: list[float] = []
    per_question: list[list[float]] = []
    offset = 0
    for question in questions:
        scores = flat[offset : offset + len(question.choices)]
        offset += len(question.choices)
        per_question.append(scores)
        # lm-eval divides by len(choice) (the raw choice text, without the delimiter).
        normalised = [s / max(len(c), 1) for s, c in zip(scores, question.choices, strict=True)]
        correct.append(float(max(range(len(scores)), key=scores.__getitem__) == question.answer))
        correct_norm.append(float(max(range(len(normalised)), key=normalised.__getitem__) == question.answer))
        if on_question is not None:
            on_question(1)
    output = MetricOutput(
        scores={
            "accuracy": ScoreSeries.from_mean(correct),
            "accuracyNorm": ScoreSeries.from_mean(correct_norm),
        },
        signature=accuracy_signature(),
    )
    return output, per_question
