"""BERTScore F1 (bert-score) with an encoder from a local directory or S3 prefix."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from kubetune_evaluator.metrics.series import MetricOutput, ScoreSeries


def encoder_layers(directory: Path) -> int:
    """bert-score only knows default layers for hub names; a local encoder uses its last layer."""
    config = json.loads((directory / "config.json").read_text())
    return int(config["num_hidden_layers"])


def score_bertscore(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    encoder_dir: Path,
    *,
    baseline_path: Path | None = None,
    batch_size: int = 32,
) -> MetricOutput:
    """Per-sample BERTScore F1 (max over references); rescaled when a baseline file is given."""
    # deferred: bert-score (transformers, pandas) costs seconds that runs without bertscore skip
    from bert_score import BERTScorer  # noqa: PLC0415

    scorer = BERTScorer(
        model_type=str(encoder_dir),
        num_layers=encoder_layers(encoder_dir),
        batch_size=batch_size,
        # bert-score insists on a language when rescaling; with a custom baseline file it is unused.
        lang="en" if baseline_path is not None else None,
        rescale_with_baseline=baseline_path is not None,
        baseline_path=str(baseline_path) if baseline_path is not None else None,
    )
    _, _, f1 = scorer.score(list(predictions), [list(refs) for refs in references])
    # The hash names the model by its (temporary) path; the directory name is what identifies it.
    signature = f"bert-score:{scorer.hash}".replace(str(encoder_dir), encoder_dir.name)
    return MetricOutput(scores={"bertscoreF1": ScoreSeries.from_mean(f1.tolist())}, signature=signature)
