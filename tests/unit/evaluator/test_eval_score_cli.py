"""`kubetune score` reports exactly what rouge-score and sacrebleu compute on the same corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sacrebleu
from rouge_score import rouge_scorer
from typer.testing import CliRunner

from kubetune_operator.cli import app

CORPUS = [
    {
        "prediction": "The cat sat on the mat.\nIt looked very happy there.",
        "reference": "A cat was sitting on the mat.\nIt seemed happy.",
    },
    {
        "prediction": "Stocks fell sharply on Monday.\nInvestors worried about rates.\nBonds rallied.",
        "reference": "Stocks dropped on Monday.\nBonds rallied as investors fretted over interest rates.",
    },
    {"prediction": "Paris is the capital of France.", "reference": "The capital of France is Paris."},
    {"prediction": "four", "references": ["4", "Four"]},
]


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _score(path: Path, metrics: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["score", "--predictions", str(path), "--metrics", metrics, "--json"])
    assert result.exit_code == 0, result.output
    parsed: dict[str, object] = json.loads(result.output)
    return parsed


def _refs(row: dict[str, object]) -> list[str]:
    refs = row.get("references", [row.get("reference")])
    assert isinstance(refs, list)
    return [str(ref) for ref in refs]


def test_score_matches_rouge_score_and_sacrebleu(tmp_path: Path) -> None:
    result = _score(_write_jsonl(tmp_path / "preds.jsonl", CORPUS), "rouge,bleu,exact_match")
    scores = result["scores"]
    assert isinstance(scores, dict)

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    expected: dict[str, list[float]] = {name: [] for name in ("rouge1", "rouge2", "rougeL", "rougeLsum")}
    for row in CORPUS:
        refs = _refs(row)
        per = scorer.score_multi(refs, str(row["prediction"]))
        for name, values in expected.items():
            values.append(per[name].fmeasure)
    for name, values in expected.items():
        assert scores[name]["value"] == pytest.approx(sum(values) / len(values), abs=1e-12), name
    # rougeLsum really differs from rougeL on the multi-sentence rows (newline-split summary-level LCS).
    assert scores["rougeLsum"]["value"] != pytest.approx(scores["rougeL"]["value"], abs=1e-6)

    width = max(len(_refs(row)) for row in CORPUS)
    streams = [[_refs(row)[i] if i < len(_refs(row)) else None for row in CORPUS] for i in range(width)]
    bleu = sacrebleu.metrics.BLEU()
    reference_bleu = bleu.corpus_score([str(row["prediction"]) for row in CORPUS], streams)
    assert scores["bleu"]["value"] == pytest.approx(reference_bleu.score, abs=1e-9)
    assert result["signatures"]["bleu"] == str(bleu.get_signature())  # type: ignore[index]
    assert "rouge-score:" in result["signatures"]["rouge"]  # type: ignore[index]

    # "four" vs ["4", "Four"]: normalised exact match on one of four rows.
    assert scores["exactMatch"]["value"] == pytest.approx(0.25)
    for value in scores.values():
        assert value["low"] <= value["value"] + 1e-9 and value["value"] <= value["high"] + 1e-9


def test_single_reference_corpus_bleu_equals_sacrebleu_one_liner(tmp_path: Path) -> None:
    rows = [row for row in CORPUS if "reference" in row]
    result = _score(_write_jsonl(tmp_path / "single.jsonl", rows), "bleu")
    expected = sacrebleu.corpus_bleu(
        [str(r["prediction"]) for r in rows], [[str(r["reference"]) for r in rows]]
    )
    assert result["scores"]["bleu"]["value"] == pytest.approx(expected.score, abs=1e-9)  # type: ignore[index]


@pytest.mark.parametrize(
    ("rows", "metrics", "message"),
    [
        ([{"prediction": "x"}], "rouge", "row 1: missing field 'reference'"),
        ([{"reference": "x"}], "rouge", "row 1: missing field 'prediction'"),
        ([{"prediction": "x", "reference": "y"}], "rouge,meteor", "unknown metric(s) meteor"),
        (
            [{"prediction": "x", "references": []}],
            "bleu",
            "row 1: field 'references' must be a non-empty list",
        ),
    ],
)
def test_bad_input_is_a_clear_error(
    tmp_path: Path, rows: list[dict[str, object]], metrics: str, message: str
) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    result = CliRunner().invoke(app, ["score", "--predictions", str(path), "--metrics", metrics])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    result = CliRunner().invoke(app, ["score", "--predictions", str(path)])
    assert result.exit_code == 2
    assert "no rows to score" in result.output
