"""ROUGE (rouge-score), BLEU (sacrebleu) and exact match on generated text.

The numbers are those of the reference libraries, unchanged: ROUGE is the mean per-sample F1
(0..1) as rouge-score computes it, BLEU is sacrebleu's corpus BLEU (0..100).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from importlib.metadata import version

import numpy as np
from rouge_score import rouge_scorer
from sacrebleu.metrics.bleu import BLEU

from kubetune_evaluator.metrics.series import IndexArray, MetricOutput, ScoreSeries

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def rouge_signature() -> str:
    return (
        f"rouge-score:{version('rouge-score')}|types:{','.join(ROUGE_TYPES)}|stemmer:porter"
        "|lsum-sentences:newline|score:f1|aggregate:mean|multi-ref:max"
    )


def score_rouge(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> MetricOutput:
    """Per-sample ROUGE F1 with Porter stemming; rougeLsum splits sentences on newlines."""
    # split_summaries=False: rougeLsum takes sentences from the newlines already in the text,
    # which is the documented convention (and what the CNN/DM-style references carry).
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True, split_summaries=False)
    per_type: dict[str, list[float]] = {name: [] for name in ROUGE_TYPES}
    for prediction, refs in zip(predictions, references, strict=True):
        scores = scorer.score(refs[0], prediction) if len(refs) == 1 else scorer.score_multi(refs, prediction)
        for name in ROUGE_TYPES:
            per_type[name].append(float(scores[name].fmeasure))
    return MetricOutput(
        scores={name: ScoreSeries.from_mean(values) for name, values in per_type.items()},
        signature=rouge_signature(),
    )


def _reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacrebleu wants one stream per reference position; None pads samples with fewer references."""
    width = max((len(refs) for refs in references), default=1)
    return [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]


def score_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> MetricOutput:
    """sacrebleu corpus BLEU (13a tokenizer, exp smoothing) plus per-sentence BLEU for distributions."""
    bleu = BLEU()
    streams = _reference_streams(references)
    corpus = bleu.corpus_score(list(predictions), streams)  # type: ignore[arg-type]
    signature = str(bleu.get_signature())
    # The bootstrap recomputes corpus BLEU from summed sufficient statistics, exactly as
    # sacrebleu's own `--confidence` does (significance._bootstrap_resample); these are the
    # library's own (underscored) hooks for that, not a re-implementation of BLEU.
    stats = np.asarray(bleu._extract_corpus_statistics(list(predictions), streams), dtype=np.float64)  # type: ignore[arg-type]

    def aggregate(indices: IndexArray) -> float:
        if len(indices) == 0:
            return 0.0
        return float(bleu._compute_score_from_stats(stats[indices].sum(axis=0)).score)

    sentence_bleu = BLEU(effective_order=True)
    per_sample = np.asarray(
        [
            sentence_bleu.sentence_score(prediction, list(refs)).score
            for prediction, refs in zip(predictions, references, strict=True)
        ],
        dtype=np.float64,
    )
    series = ScoreSeries(per_sample=per_sample, corpus=float(corpus.score), aggregate=aggregate)
    return MetricOutput(scores={"bleu": series}, signature=signature)


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces.

    Hand-written because it is four lines and the reference (the SQuAD v1.1 script) is not a
    package; `evaluate` would pull `datasets` and a hub download for the same four lines.
    """
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_signature() -> str:
    return "exact_match|normalize:squad(lower,punct,articles,whitespace)|multi-ref:any"


def score_exact_match(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> MetricOutput:
    values = [
        float(any(normalize_answer(prediction) == normalize_answer(ref) for ref in refs))
        for prediction, refs in zip(predictions, references, strict=True)
    ]
    return MetricOutput(
        scores={"exactMatch": ScoreSeries.from_mean(values)}, signature=exact_match_signature()
    )
