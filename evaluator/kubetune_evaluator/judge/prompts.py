"""Judge prompts and verdict parsing (pure; MT-Bench style single-answer and pairwise grading)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

SINGLE_SYSTEM = (
    "You are an impartial judge. Rate how well the assistant's answer follows the instruction, "
    "compared with the reference answer, on a scale of 1 to 10. "
    'Reply with JSON only: {"rating": <integer 1-10>}.'
)
PAIRWISE_SYSTEM = (
    "You are an impartial judge. Compare two assistant answers to the same instruction, using the "
    "reference answer. Ignore the order of the answers and their length. "
    'Reply with JSON only: {"winner": "A"} or {"winner": "B"} or {"winner": "tie"}.'
)

# Constrained decoding where the server supports it (OpenAI, vLLM, llama.cpp): the answer is then
# always parseable, even from a small judge model. The parsers below still accept free text.
SINGLE_RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "rating",
        "schema": {
            "type": "object",
            "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 10}},
            "required": ["rating"],
        },
    },
}
PAIRWISE_RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "verdict",
        "schema": {
            "type": "object",
            "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]}},
            "required": ["winner"],
        },
    },
}

Winner = Literal["A", "B", "tie"]
ResponseFormatStyle = Literal["json_schema", "json_object", "none"]


def response_format(style: ResponseFormatStyle, openai_format: dict[str, Any]) -> dict[str, Any] | None:
    """The `response_format` for a server: OpenAI/vLLM take `json_schema`; llama-cpp-python's server only
    knows `json_object`, with the schema beside it; `none` sends nothing (free text is parsed)."""
    if style == "none":
        return None
    if style == "json_object":
        return {"type": "json_object", "schema": openai_format["json_schema"]["schema"]}
    return openai_format


class VerdictParseError(ValueError):
    """The judge's reply holds no usable verdict (retried like a transport error)."""


def single_messages(prompt: str, reference: str, answer: str) -> list[dict[str, str]]:
    user = f"[Instruction]\n{prompt}\n\n[Reference answer]\n{reference}\n\n[Assistant's answer]\n{answer}"
    return [{"role": "system", "content": SINGLE_SYSTEM}, {"role": "user", "content": user}]


def pairwise_messages(prompt: str, reference: str, answer_a: str, answer_b: str) -> list[dict[str, str]]:
    user = (
        f"[Instruction]\n{prompt}\n\n[Reference answer]\n{reference}\n\n"
        f"[Answer A]\n{answer_a}\n\n[Answer B]\n{answer_b}"
    )
    return [{"role": "system", "content": PAIRWISE_SYSTEM}, {"role": "user", "content": user}]


def _json_field(text: str, key: str) -> object | None:
    match = re.search(r"\{.*\}", text, flags=re.DOTALL)
    if not match:
        return None
    try:
        parsed = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    return parsed.get(key) if isinstance(parsed, dict) else None


def parse_rating(text: str) -> float:
    """A 1..10 rating from `{"rating": n}` or MT-Bench's `[[n]]`."""
    value = _json_field(text, "rating")
    if value is None:
        bracketed = re.search(r"\[\[(\d+(?:\.\d+)?)\]\]", text)
        value = bracketed.group(1) if bracketed else None
    try:
        rating = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise VerdictParseError(f"no rating in judge reply: {text[:200]!r}") from None
    if not 1.0 <= rating <= 10.0:
        raise VerdictParseError(f"rating {rating} outside 1..10 in judge reply: {text[:200]!r}")
    return rating


def parse_winner(text: str) -> Winner:
    """'A', 'B' or 'tie' from `{"winner": ...}` or MT-Bench's `[[A]]`/`[[B]]`/`[[C]]`."""
    value = _json_field(text, "winner")
    if value is None:
        bracketed = re.search(r"\[\[([ABC])\]\]", text)
        value = {"C": "tie"}.get(bracketed.group(1), bracketed.group(1)) if bracketed else None
    if isinstance(value, str) and value.strip().lower() == "tie":
        return "tie"
    if value in ("A", "B"):
        return value  # type: ignore[return-value]
    raise VerdictParseError(f"no winner in judge reply: {text[:200]!r}")


def combine_both_orders(model_first: Winner, model_second: Winner) -> float:
    """Model's pairwise score from two judgements with swapped positions: 1 win, 0.5 tie, 0 loss.

    In the first call the model's answer is A, in the second it is B. A judge that changes its mind
    when the order changes is showing position bias, so disagreement counts as a tie.
    """
    model_wins_first = model_first == "A"
    model_wins_second = model_second == "B"
    baseline_wins_first = model_first == "B"
    baseline_wins_second = model_second == "A"
    if model_wins_first and model_wins_second:
        return 1.0
    if baseline_wins_first and baseline_wins_second:
        return 0.0
    return 0.5


@dataclass(frozen=True)
class JudgeOutcome:
    """One sample's judgement: a score, or the error that remained after all retries."""

    score: float | None
    error: str | None = None
