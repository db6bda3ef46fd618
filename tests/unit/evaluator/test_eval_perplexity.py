"""Perplexity pieces without a model: the rolling windows and aggregates equal lm-eval's, the input
checks, and the verdict treating a perplexity rise as the regression."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.metrics.perplexity import rolling_windows, score_perplexity
from kubetune_evaluator.samples import build_task_samples, check_metrics_fit_tasks
from kubetune_evaluator.verdict import decide_verdict
from kubetune_operator.api import EvalJobSpec, Thresholds


@pytest.mark.parametrize("max_length", [1, 2, 3, 7, 32])
def test_rolling_windows_equal_lm_evals(max_length: int) -> None:
    # deferred: lm-eval cost seconds to import; collecting other tests skips them
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window  # noqa: PLC0415

    for n in range(0, 80, 3):
        tokens = list(range(100, 100 + n))
        theirs = [
            make_disjoint_window(w) for w in get_rolling_token_windows(tokens, 1, max_length, context_len=1)
        ]
        ours = rolling_windows(tokens, 1, max_length)
        assert ours == [(list(a), list(b)) for a, b in theirs]
        assert [t for _, continuation in ours for t in continuation] == tokens  # each token scored once


def test_aggregates_equal_lm_evals() -> None:
    # deferred: lm-eval cost seconds to import; collecting other tests skips them
    from lm_eval.api.metrics import bits_per_byte, weighted_perplexity  # noqa: PLC0415

    texts = ["a b  c", "été\nnaïve", "one"]
    loglik = [-12.5, -30.25, -4.0]
    output = score_perplexity(loglik, texts)
    words = [3, 2, 1]
    nbytes = [len(t.encode()) for t in texts]
    assert output.scores["wordPerplexity"].corpus == pytest.approx(
        weighted_perplexity(list(zip(loglik, words, strict=True)))
    )
    assert output.scores["bytePerplexity"].corpus == pytest.approx(
        weighted_perplexity(list(zip(loglik, nbytes, strict=True)))
    )
    assert output.scores["bitsPerByte"].corpus == pytest.approx(
        bits_per_byte(list(zip(loglik, nbytes, strict=True)))
    )
    # A resample re-aggregates the sums (not the mean of per-document perplexities).
    series = output.scores["wordPerplexity"]
    assert series.aggregate(np.array([0, 0, 2])) == pytest.approx(math.exp(29 / 7))


def _spec(tmp_path: Path, rows: list[dict[str, Any]], **spec: Any) -> EvalJobSpec:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return EvalJobSpec.model_validate(
        {
            "model": {"uri": str(tmp_path / "model")},
            "dataset": {"uri": str(data), "split": "all"},
            "output": {"uri": str(tmp_path / "out")},
            **spec,
        }
    )


def test_text_rows_become_a_perplexity_task_with_texts_as_given(tmp_path: Path) -> None:
    rows = [{"text": " lead\n\ntrail  "}, {"text": "two"}]
    (task,) = build_task_samples(_spec(tmp_path, rows, metrics=["perplexity"]))
    assert task.kind == "text" and task.documents == [" lead\n\ntrail  ", "two"]


def test_perplexity_without_text_rows_and_fewshot_on_text_are_bad_input(tmp_path: Path) -> None:
    spec = _spec(tmp_path, [{"prompt": "p", "completion": "c"}], metrics=["perplexity"])
    with pytest.raises(EvalInputError, match="perplexity needs a plain-text task"):
        check_metrics_fit_tasks(spec.metrics, build_task_samples(spec))
    spec = _spec(tmp_path, [{"text": "t"}] * 4, metrics=["perplexity"], fewshot={"numFewshot": 1})
    with pytest.raises(EvalInputError, match="few-shot examples do not apply"):
        build_task_samples(spec)


def test_a_perplexity_rise_is_the_regression() -> None:
    def scores(model: float, baseline: float) -> dict[str, Any]:
        # The delta CI around the point delta, as the paired bootstrap gives it.
        delta = {"low": model - baseline - 0.02, "high": model - baseline + 0.02}
        entry = {"model": {"value": model}, "baseline": {"value": baseline}, "delta": delta}
        return {"wiki": {"bitsPerByte": entry}}

    thresholds = Thresholds(maxRegression=0.05)
    assert decide_verdict(scores(1.00, 1.10), thresholds).verdict == "Passed"  # lower: better
    failed = decide_verdict(scores(1.20, 1.10), thresholds)
    assert failed.verdict == "Failed" and "9.1% regression" in failed.reasons[0]
