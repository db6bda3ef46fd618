"""Stop sequences, answer extraction and lm-eval's exact_match rule (pure functions, no model).

The extraction and the exact_match rule are compared with lm-evaluation-harness's own RegexFilter and
exact_match_hf_evaluate on texts that exercise groups, selection, the fallback and the removals.
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from kubetune_evaluator.answers import extract_answer, lm_eval_exact_match
from kubetune_evaluator.generation import cut_at_stop
from kubetune_operator.api import EvalJobSpec
from kubetune_operator.api.evaljob import AnswerSpec

TEXTS = [
    "so 3 + 4 = 7. #### 7",
    "#### -1,250.5 and then #### 12",
    "The answer is $1,000.",
    "no number here",
    "",
    "A then B then 42",
]
STRICT = r"#### (\-?[0-9\.\,]+)"
FLEXIBLE = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"


def test_cut_at_the_first_stop_sequence_whichever_comes_first() -> None:
    assert cut_at_stop("abc Question: x\n\ny", ["\n\n", "Question:"]) == "abc "
    assert cut_at_stop("no stop here", ["Question:"]) == "no stop here"
    assert cut_at_stop("Question: at once", ["Question:"]) == ""


@pytest.mark.parametrize(("regex", "select"), [(STRICT, 0), (FLEXIBLE, -1), (FLEXIBLE, 0)])
def test_extraction_equals_lm_evals_regex_filter(regex: str, select: int) -> None:
    # deferred: lm-eval cost seconds to import; collecting other tests skips them
    from lm_eval.filters.extraction import RegexFilter  # noqa: PLC0415

    theirs = RegexFilter(regex_pattern=regex, group_select=select).apply([[text] for text in TEXTS], [])
    ours = [extract_answer(text, AnswerSpec(regex=regex, select=select)) for text in TEXTS]
    assert ours == [resps[0] for resps in theirs]
    assert "[invalid]" in ours and len(set(ours)) > 2


def test_exact_match_equals_lm_evals_rule() -> None:
    # deferred: lm-eval cost seconds to import; collecting other tests skips them
    from lm_eval.api.metrics import exact_match_hf_evaluate  # noqa: PLC0415

    options: dict[str, Any] = {
        "ignore_case": True,
        "ignore_punctuation": False,
        "regexes_to_ignore": [",", "\\$", "(?s).*#### ", "\\.$"],
    }
    predictions = ["1,000", "$12.", "seven", "Seven", "7", "8"]
    references = ["steps #### 1000", "#### 12", "SEVEN", "seven", "a\n#### 7", "#### 9"]
    answer = AnswerSpec(
        ignore_case=True, ignore_punctuation=False, regexes_to_ignore=options["regexes_to_ignore"]
    )
    ours = lm_eval_exact_match(predictions, [[ref] for ref in references], answer)
    for i, (prediction, reference) in enumerate(zip(predictions, references, strict=True)):
        theirs = exact_match_hf_evaluate([prediction], [reference], **options)["exact_match"]
        assert ours.scores["exactMatch"].per_sample[i] == theirs, prediction
    assert ours.scores["exactMatch"].corpus == pytest.approx(5 / 6)


def test_a_bad_regex_is_refused_by_the_api() -> None:
    spec = {
        "model": {"uri": "m"},
        "dataset": {"uri": "d.jsonl"},
        "output": {"uri": "o"},
        "tasks": [
            {"name": "t", "templates": [{"prompt": "p", "completion": "c"}], "answer": {"regex": "(a"}}
        ],
    }
    with pytest.raises(pydantic.ValidationError, match="not a valid regular expression"):
        EvalJobSpec.model_validate(spec)
