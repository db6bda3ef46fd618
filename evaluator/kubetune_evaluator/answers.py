"""Reading the answer out of a generation and comparing it, as lm-evaluation-harness does.

`extract_answer` is lm-eval's `regex` filter (`lm_eval/filters/extraction.py`, RegexFilter): all matches
(`re.findall`), the `select`-th one (0 first, -1 last), its first non-empty group when the pattern has
several, stripped; the fallback when nothing matches. (A `select` past the last match also gives the
fallback, where lm-eval raises IndexError.) `lm_eval_exact_match` is lm-eval's `exact_match` metric
(`exact_match_hf_evaluate`, from Hugging Face evaluate): each regex in `regexes_to_ignore` removed from
both texts in order, then optional lower-casing and punctuation removal, then string equality. Both are a
few lines, and lm-eval is not a runtime dependency of the evaluator image; the parity test compares them
with lm-eval itself.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kubetune_evaluator.metrics.series import MetricOutput, ScoreSeries

if TYPE_CHECKING:
    from kubetune_operator.api.evaljob import AnswerSpec

_PUNCTUATION = str.maketrans("", "", string.punctuation)


def extract_answer(text: str, answer: AnswerSpec) -> str:
    if answer.regex is None:
        return text
    matches = re.findall(answer.regex, text)
    if not -len(matches) <= answer.select < len(matches):
        return answer.fallback
    match = matches[answer.select]
    if isinstance(match, tuple):
        groups = [group for group in match if group]
        if not groups:
            return answer.fallback
        match = groups[0]
    return str(match).strip()


def _comparable(text: str, answer: AnswerSpec) -> str:
    for pattern in answer.regexes_to_ignore:
        text = re.sub(pattern, "", text)
    if answer.ignore_case:
        text = text.lower()
    if answer.ignore_punctuation:
        text = text.translate(_PUNCTUATION)
    return text


def lm_eval_exact_match_signature(answer: AnswerSpec) -> str:
    parts = ["exact_match|rule:lm-eval(string equality)"]
    if answer.regex is not None:
        parts.append(f"extract:regex {answer.regex!r} select {answer.select}")
    if answer.regexes_to_ignore:
        parts.append(f"ignore:{answer.regexes_to_ignore!r}")
    parts.append(f"ignore_case:{answer.ignore_case}|ignore_punctuation:{answer.ignore_punctuation}")
    parts.append("multi-ref:any")
    return "|".join(parts)


def lm_eval_exact_match(
    predictions: Sequence[str], references: Sequence[Sequence[str]], answer: AnswerSpec
) -> MetricOutput:
    """1 when the prediction equals a reference after `answer`'s removals, else 0 (per sample)."""
    values = [
        float(any(_comparable(prediction, answer) == _comparable(ref, answer) for ref in refs))
        for prediction, refs in zip(predictions, references, strict=True)
    ]
    return MetricOutput(
        scores={"exactMatch": ScoreSeries.from_mean(values)}, signature=lm_eval_exact_match_signature(answer)
    )
