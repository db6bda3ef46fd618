"""Perplexity of plain text by rolling log-likelihood, as lm-evaluation-harness's `loglikelihood_rolling`.

Each document is tokenized whole (the tokenizer's own special tokens, as lm-eval's `tok_encode`) and cut
into disjoint windows of at most the model's context (`lm_eval.utils.get_rolling_token_windows` with
`context_len=1`, then `make_disjoint_window`): the first window predicts its tokens from the BOS token
(EOS without one), each later window predicts the next tokens from the `max_length` tokens before them.
The document's log-likelihood is the sum over its windows. The scores are lm-eval's corpus aggregates:

- `wordPerplexity` = exp(-Σ loglik / Σ words), words = len(re.split(r"\\s+", text));
- `bytePerplexity` = exp(-Σ loglik / Σ UTF-8 bytes);
- `bitsPerByte` = -Σ loglik / Σ bytes / ln 2.

Per sample they are the same ratios on one document; bootstrap resamples re-aggregate the sums.
Lower is better for all three.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kubetune_evaluator.loglikelihood import (
    TokenPair,
    encode_text,
    pair_loglikelihoods,
    prefix_token_id,
    resolve_max_length,
)
from kubetune_evaluator.metrics.series import IndexArray, MetricOutput, ScoreSeries

PERPLEXITY_SCORES = ("wordPerplexity", "bytePerplexity", "bitsPerByte")


def rolling_windows(tokens: Sequence[int], prefix: int, max_length: int) -> list[TokenPair]:
    """(context, continuation) pairs whose continuations are the document's tokens, each once, in order."""
    windows: list[TokenPair] = []
    if not tokens:
        return windows
    first = min(max_length, len(tokens))
    windows.append(([prefix], list(tokens[:first])))
    predicted = first
    while predicted < len(tokens):
        length = min(len(tokens) - predicted, max_length)
        end = predicted + length
        # lm-eval's window is tokens[end - max_length - 1 : end - 1]; the disjoint context drops its
        # last length - 1 tokens, which are the continuation's own.
        context = list(tokens[max(end - max_length - 1, 0) : end - 1])
        windows.append((context[: len(context) - (length - 1)], list(tokens[predicted:end])))
        predicted = end
    return windows


def document_loglikelihoods(
    model: Any,
    tokenizer: Any,
    documents: Sequence[str],
    *,
    batch_size: int = 16,
    max_length: int | None = None,
    on_document: Callable[[int], None] | None = None,
) -> list[float]:
    """Summed log-likelihood of every document (0.0 for an empty one, which has no tokens)."""
    limit = max_length if max_length is not None else resolve_max_length(model, tokenizer)
    owners, pairs = document_windows(tokenizer, documents, limit)
    reported = done = 0

    def on_batch(count: int) -> None:
        nonlocal reported, done
        done += count
        reached = done * len(documents) // max(len(pairs), 1)
        if on_document is not None and reached > reported:
            on_document(reached - reported)
        reported = reached

    window_lls = pair_loglikelihoods(
        model, tokenizer, pairs, batch_size=batch_size, max_length=limit, on_batch=on_batch
    )
    return document_totals(owners, window_lls, len(documents))


def document_windows(
    tokenizer: Any, documents: Sequence[str], limit: int
) -> tuple[list[int], list[TokenPair]]:
    """Every document's rolling windows in order, and the index of the document each window belongs to."""
    prefix = prefix_token_id(tokenizer)
    owners: list[int] = []
    pairs: list[TokenPair] = []
    for index, text in enumerate(documents):
        for pair in rolling_windows(encode_text(tokenizer, text), prefix, limit):
            owners.append(index)
            pairs.append(pair)
    return owners, pairs


def document_totals(owners: Sequence[int], window_lls: Sequence[float], count: int) -> list[float]:
    """The documents' log-likelihoods: their windows' summed in window order (0.0 for an empty one)."""
    totals = [0.0] * count
    for owner, value in zip(owners, window_lls, strict=True):
        totals[owner] += value
    return totals


def count_words(text: str) -> int:
    return len(re.split(r"\s+", text))


def count_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def perplexity_signature(max_length: int | None = None) -> str:
    window = f"window:{max_length}" if max_length else "window:model context"
    return (
        "perplexity|loglikelihood_rolling as lm-eval hf|disjoint windows, first from BOS|"
        f"{window}|words:re.split(\\s+)|bytes:utf-8|aggregate:sum(loglik)/sum(units)"
    )


def _series(loglik: np.ndarray, units: np.ndarray, transform: Callable[[float], float]) -> ScoreSeries:
    def aggregate(indices: IndexArray) -> float:
        total = float(units[indices].sum())
        return transform(-float(loglik[indices].sum()) / total) if total else math.nan

    per_sample = np.asarray(
        [transform(-ll / n) if n else math.nan for ll, n in zip(loglik, units, strict=True)], dtype=np.float64
    )
    return ScoreSeries(per_sample=per_sample, corpus=aggregate(np.arange(len(loglik))), aggregate=aggregate)


def score_perplexity(loglikelihoods: Sequence[float], documents: Sequence[str]) -> MetricOutput:
    loglik = np.asarray(loglikelihoods, dtype=np.float64)
    words = np.asarray([count_words(text) for text in documents], dtype=np.float64)
    nbytes = np.asarray([count_bytes(text) for text in documents], dtype=np.float64)
    return MetricOutput(
        scores={
            "wordPerplexity": _series(loglik, words, math.exp),
            "bytePerplexity": _series(loglik, nbytes, math.exp),
            "bitsPerByte": _series(loglik, nbytes, lambda nats: nats / math.log(2)),
        },
        signature=perplexity_signature(),
    )
