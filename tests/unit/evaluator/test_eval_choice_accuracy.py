"""Multiple-choice accuracy by log-likelihood equals a direct, unbatched computation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kubetune_evaluator.metrics.choice_accuracy import ChoiceQuestion, score_multiple_choice
from kubetune_evaluator.samples import choice_question, mmlu_prompt

ROWS = [
    {"question": "Which letter is a vowel?", "choices": ["b", "e", "c d", "f"], "answer": "B"},
    {"question": "Reverse: a b", "choices": ["b a", "a b"], "answer": 0},
    {"question": "Copy: c", "choices": ["c", "d d d d", "h"], "answer": "c"},
    {"question": "Pick the longest", "choices": ["a", "a b c d e f g"], "answer": 1},
    {"question": "Which is g?", "choices": ["e", "f", "g", "h"], "answer": "C"},
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kubetune_trainer.testing import build_tiny_model

    torch.set_num_threads(1)
    directory = build_tiny_model(Path(tmp_path_factory.mktemp("tiny")), seed=3)
    return AutoModelForCausalLM.from_pretrained(directory).eval(), AutoTokenizer.from_pretrained(directory)


def _direct_loglikelihood(model: object, tokenizer: object, context: str, continuation: str) -> float:
    """One sequence at a time, no padding: sum of log P(token | prefix) over the continuation tokens."""
    context_ids = tokenizer(context)["input_ids"]  # type: ignore[operator]
    whole_ids = tokenizer(context + continuation)["input_ids"]  # type: ignore[operator]
    assert whole_ids[: len(context_ids)] == context_ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([whole_ids])).logits[0]  # type: ignore[operator]
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    return sum(float(logprobs[i - 1, whole_ids[i]]) for i in range(len(context_ids), len(whole_ids)))


@pytest.mark.slow
def test_accuracy_matches_direct_loglikelihood(tiny_model: tuple[object, object]) -> None:
    model, tokenizer = tiny_model
    questions = [choice_question(row, f"row {i + 1}", None) for i, row in enumerate(ROWS)]
    assert questions[0].prompt == mmlu_prompt(ROWS[0]["question"], ROWS[0]["choices"])  # type: ignore[arg-type]
    assert [q.answer for q in questions] == [1, 0, 0, 1, 2]

    output, loglikelihoods = score_multiple_choice(model, tokenizer, questions, batch_size=3)

    correct = correct_norm = 0
    for question, batched in zip(questions, loglikelihoods, strict=True):
        direct = [_direct_loglikelihood(model, tokenizer, question.prompt, " " + c) for c in question.choices]
        assert batched == pytest.approx(direct, abs=1e-4)
        correct += int(max(range(len(direct)), key=direct.__getitem__) == question.answer)
        normalised = [d / len(c) for d, c in zip(direct, question.choices, strict=True)]
        correct_norm += int(max(range(len(normalised)), key=normalised.__getitem__) == question.answer)
    assert output.scores["accuracy"].corpus == pytest.approx(correct / len(questions))
    assert output.scores["accuracyNorm"].corpus == pytest.approx(correct_norm / len(questions))
    assert output.signature.startswith("accuracy|loglikelihood")


@pytest.mark.slow
def test_a_model_that_prefers_the_answer_scores_full_accuracy(tiny_model: tuple[object, object]) -> None:
    """Sanity check of the argmax: scoring only the gold choice against itself can never be wrong."""
    model, tokenizer = tiny_model
    questions = [ChoiceQuestion(prompt="Copy: a", choices=("a", "a"), answer=0)]
    output, _ = score_multiple_choice(model, tokenizer, questions)
    assert output.scores["accuracy"].corpus == 1.0  # ties resolve to the first choice, as numpy argmax does
