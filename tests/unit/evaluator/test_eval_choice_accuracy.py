"""Multiple-choice accuracy by log-likelihood equals a direct, unbatched computation, with lm-eval's
tokenization rules (whitespace moved to the continuation, BOS for empty contexts, left truncation)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kubetune_devtools.tiny_models import build_tiny_model
from kubetune_evaluator import loglikelihood
from kubetune_evaluator.loglikelihood import (
    MIN_SHARED_PREFIX,
    batch_order,
    encode_pair,
    encode_pairs,
    length_order,
    pair_loglikelihoods,
    resolve_max_length,
)
from kubetune_evaluator.metrics.choice_accuracy import ChoiceQuestion, continuation_of, score_multiple_choice
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
    # deferred: transformers cost seconds to import; collecting other tests skips them
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

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


def _direct_tokens_loglikelihood(model: object, context_ids: list[int], continuation_ids: list[int]) -> float:
    """Unbatched reference on token ids: the continuation's log-probability given the context."""
    whole = context_ids + continuation_ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([whole])).logits[0]  # type: ignore[operator]
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    return sum(float(logprobs[i - 1, whole[i]]) for i in range(len(context_ids), len(whole)))


def test_all_trailing_whitespace_of_the_context_moves_to_the_continuation(
    tiny_model: tuple[object, object],
) -> None:
    """lm-eval moves spaces *and* newlines: the context is tokenized without them, the pair as one string."""
    _, tokenizer = tiny_model
    context_ids, continuation_ids = encode_pair(tokenizer, "Copy: a\nAnswer: \n", " b")
    whole = tokenizer("Copy: a\nAnswer: \n b")["input_ids"]  # type: ignore[operator]
    assert context_ids == tokenizer("Copy: a\nAnswer:")["input_ids"]  # type: ignore[operator]
    assert context_ids + continuation_ids == whole
    assert tokenizer.decode(continuation_ids) == " \n b"  # type: ignore[attr-defined]


def test_choices_keep_their_whitespace() -> None:
    assert continuation_of(" b ") == "  b "
    question = choice_question({"question": "q", "choices": ["a", " b"], "answer": " b"}, "row 1", None)
    assert question.choices == ("a", " b") and question.answer == 1


def test_an_empty_context_is_scored_from_bos(tiny_model: tuple[object, object]) -> None:
    _, tokenizer = tiny_model
    bos = tokenizer.bos_token_id  # type: ignore[attr-defined]
    assert bos is not None
    expected = tokenizer(" a b", add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    assert encode_pair(tokenizer, "", " a b") == ([bos], expected)
    # A context of whitespace only is the same case once its whitespace has moved.
    assert encode_pair(tokenizer, "\n", " a") == (
        [bos],
        tokenizer("\n a", add_special_tokens=False)["input_ids"],  # type: ignore[operator]
    )


def test_requests_run_longest_first_ties_by_tokens() -> None:
    pairs = [([5], [1]), ([1, 2], [3]), ([9], [9, 9]), ([1, 2], [2])]
    assert length_order(pairs) == [3, 1, 2, 0]


@pytest.mark.slow
def test_empty_context_scores_equal_a_direct_computation_from_bos(tiny_model: tuple[object, object]) -> None:
    model, tokenizer = tiny_model
    questions = [ChoiceQuestion(prompt="", choices=("a b", "c", "d e f"), answer=0)]
    _, loglikelihoods = score_multiple_choice(model, tokenizer, questions)
    bos = tokenizer.bos_token_id  # type: ignore[attr-defined]
    direct = [
        _direct_tokens_loglikelihood(
            model,
            [bos],
            tokenizer(" " + c, add_special_tokens=False)["input_ids"],  # type: ignore[operator]
        )
        for c in questions[0].choices
    ]
    assert loglikelihoods[0] == pytest.approx(direct, abs=1e-4)


@pytest.mark.slow
def test_over_long_inputs_keep_their_last_tokens(tiny_model: tuple[object, object]) -> None:
    """With a context of 8 tokens, the model sees the last 8 tokens of context + continuation[:-1]."""
    model, tokenizer = tiny_model
    prompt = "Copy: " + " ".join("abcdefgh" * 3) + "\nAnswer:"
    pairs = [encode_pair(tokenizer, prompt, " a b c"), encode_pair(tokenizer, prompt, " h")]
    assert all(len(c) + len(k) > 9 for c, k in pairs)
    truncated = pair_loglikelihoods(model, tokenizer, pairs, batch_size=2, max_length=8)
    for (context_ids, continuation_ids), score in zip(pairs, truncated, strict=True):
        kept = (context_ids + continuation_ids)[-9:]
        direct = _direct_tokens_loglikelihood(model, kept[: -len(continuation_ids)], continuation_ids)
        assert score == pytest.approx(direct, abs=1e-4)
    full = pair_loglikelihoods(model, tokenizer, pairs, batch_size=2)
    assert full[0] != pytest.approx(truncated[0], abs=1e-3)  # the truncation did change what the model saw
    assert resolve_max_length(model, tokenizer) == 1024  # the tiny Llama's max_position_embeddings


@pytest.mark.slow
def test_answers_of_one_token_to_one_prompt_share_a_forward_pass(tiny_model: tuple[object, object]) -> None:
    """MMLU's letters continue the same prompt: one model row for the four, each answer read from it."""
    model, tokenizer = tiny_model
    rows: list[int] = []

    class Counting(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model
            self.device = model.device  # type: ignore[attr-defined]
            self.config = model.config  # type: ignore[attr-defined]

        def forward(self, **kwargs: torch.Tensor) -> object:
            rows.append(int(kwargs["input_ids"].shape[0]))
            return self.inner(**kwargs)  # type: ignore[operator]

    questions = [mmlu_prompt(f"Copy {word}", ["a", "b", "c", "d"]) for word in ("x", "y y", "z z z")]
    pairs = [encode_pair(tokenizer, prompt, f" {letter}") for prompt in questions for letter in "ABCD"]
    shared = pair_loglikelihoods(Counting(), tokenizer, pairs, batch_size=16)
    assert rows == [3]  # 12 requests, 3 distinct inputs
    for pair, value in zip(pairs, shared, strict=True):
        assert value == pytest.approx(_direct_tokens_loglikelihood(model, *pair), abs=1e-4)


@pytest.mark.slow
def test_logits_only_at_the_answer_positions_give_the_same_loglikelihoods(
    tiny_model: tuple[object, object],
) -> None:
    """A model taking logits_to_keep projects only the answer positions; one without it, every position."""
    model, tokenizer = tiny_model
    kept: list[int] = []

    class Spying(torch.nn.Module):
        def __init__(self, pass_through: bool) -> None:
            super().__init__()
            self.device = model.device  # type: ignore[attr-defined]
            self.config = model.config  # type: ignore[attr-defined]
            if pass_through:
                self.forward = self.with_keep  # type: ignore[method-assign]

        def forward(self, input_ids: torch.Tensor) -> object:
            return model(input_ids=input_ids)  # type: ignore[operator]

        def with_keep(self, input_ids: torch.Tensor, logits_to_keep: torch.Tensor) -> object:
            kept.append(len(logits_to_keep))
            return model(input_ids=input_ids, logits_to_keep=logits_to_keep)  # type: ignore[operator]

    prompts = [mmlu_prompt(f"Copy {'w ' * n}", ["a", "bb", "c c", "d"]) for n in range(1, 6)]
    pairs = [encode_pair(tokenizer, p, f" {c}") for p in prompts for c in ("A", "bb", "c c d")]
    every_position = pair_loglikelihoods(Spying(False), tokenizer, pairs, batch_size=4)
    answers_only = pair_loglikelihoods(Spying(True), tokenizer, pairs, batch_size=4)
    assert answers_only == pytest.approx(every_position, abs=1e-5)
    assert kept and max(kept) < min(len(p[0]) for p in pairs)  # fewer positions than any input


def test_inputs_sharing_a_long_prefix_are_batched_together_each_run_longest_first() -> None:
    shots = tuple(range(100, 100 + MIN_SHARED_PREFIX))  # a few-shot prefix of exactly the threshold
    other = tuple(range(200, 200 + MIN_SHARED_PREFIX - 1))  # one token short of it
    inputs = [
        (*shots, 1),
        (
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
        ),
        (*shots, 2, 2, 2),
        (*other, 1),
        (*other, 2, 2),
        (*shots, 3, 3),
    ]
    # The few-shot run (its longest: 35 tokens) first, longest first inside; the rest longest first.
    assert batch_order(inputs) == [2, 5, 0, 1, 4, 3]


@pytest.mark.slow
def test_a_shared_prefix_computed_once_gives_the_same_loglikelihoods(
    tiny_model: tuple[object, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Few-shot examples shared by every question: one pass over them (a KV cache copied to each row)."""
    model, tokenizer = tiny_model
    widths: list[tuple[int, int]] = []

    class Recording(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.device = model.device  # type: ignore[attr-defined]
            self.config = model.config  # type: ignore[attr-defined]

        def forward(
            self,
            input_ids: torch.Tensor,
            cache: object = None,
            use_cache: bool = False,
            logits_to_keep: object = 0,
        ) -> object:
            widths.append(tuple(input_ids.shape))  # type: ignore[arg-type]
            return model(  # type: ignore[operator]
                input_ids=input_ids, cache=cache, use_cache=use_cache, logits_to_keep=logits_to_keep
            )

    examples = "".join(
        mmlu_prompt(f"Copy {w}", ["a", "b", "c", "d"]) + " A\n\n" for w in ("x y", "z", "w v u")
    )
    prompts = [examples + mmlu_prompt(f"Copy {'q ' * n}", ["a", "bb", "c c", "d"]) for n in range(1, 6)]
    pairs = encode_pairs(tokenizer, [(p, f" {c}") for p in prompts for c in ("A", "bb", "c c d")])
    shared = pair_loglikelihoods(Recording(), tokenizer, pairs, batch_size=4)
    prefix = len(encode_pair(tokenizer, examples + "Copy", " q")[0])
    assert widths[0][0] == 1 and widths[0][1] >= prefix - 1  # the examples, once
    assert all(rows > 1 and width < 40 for rows, width in widths[1:])  # then only what follows them
    monkeypatch.setattr(loglikelihood, "MIN_SHARED_PREFIX", 10**9)
    widths.clear()
    whole = pair_loglikelihoods(Recording(), tokenizer, pairs, batch_size=4)
    assert all(width > prefix for _, width in widths)  # without sharing every row holds the examples
    assert shared == pytest.approx(whole, abs=1e-5)
    for pair, value in zip(pairs[:3], shared, strict=False):
        assert value == pytest.approx(_direct_tokens_loglikelihood(model, *pair), abs=1e-4)


@pytest.mark.slow
def test_a_model_without_a_copyable_cache_gets_every_row_whole(tiny_model: tuple[object, object]) -> None:
    """A forward that takes a cache argument but returns none (another cache type): rows fed whole."""
    model, tokenizer = tiny_model
    widths: list[int] = []

    class NoCache(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.device = model.device  # type: ignore[attr-defined]
            self.config = model.config  # type: ignore[attr-defined]

        def forward(self, input_ids: torch.Tensor, cache: object = None, use_cache: bool = False) -> object:
            assert cache is None  # never handed a cache back
            widths.append(int(input_ids.shape[1]))
            output = model(input_ids=input_ids, use_cache=False)  # type: ignore[operator]
            output.cache = None
            return output

    examples = "".join(
        mmlu_prompt(f"Copy {w}", ["a", "b", "c", "d"]) + " A\n\n" for w in ("x y", "z", "w v u")
    )
    prompts = [examples + mmlu_prompt(f"Copy {'q ' * n}", ["a", "b", "c", "d"]) for n in range(1, 4)]
    pairs = encode_pairs(tokenizer, [(p, f" {c}") for p in prompts for c in ("A", "B")])
    values = pair_loglikelihoods(NoCache(), tokenizer, pairs, batch_size=2)
    prefix = len(encode_pair(tokenizer, examples + "Copy", " q")[0])
    assert widths[0] >= prefix - 1 and all(width > prefix for width in widths[1:])  # tried once, then whole
    for pair, value in zip(pairs, values, strict=True):
        assert value == pytest.approx(_direct_tokens_loglikelihood(model, *pair), abs=1e-4)
