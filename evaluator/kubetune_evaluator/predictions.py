"""Existing predictions (`kubetune score`): rows with `prediction` and `reference` or `references`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubetune_evaluator.errors import EvalInputError
from kubetune_operator.data.datasets import read_rows
from kubetune_operator.data.errors import DataError


@dataclass(frozen=True)
class PredictionRecord:
    prediction: str
    references: tuple[str, ...]


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise EvalInputError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def records_from_rows(rows: Sequence[Mapping[str, Any]], source: str) -> list[PredictionRecord]:
    """Validate rows; errors name the source, the 1-based row and the field."""
    if not rows:
        raise EvalInputError(f"{source}: no rows to score")
    records = []
    for number, row in enumerate(rows, start=1):
        where = f"{source}: row {number}"
        if "prediction" not in row:
            raise EvalInputError(
                f"{where}: missing field 'prediction' (row fields: {', '.join(sorted(row))})"
            )
        prediction = _text(row["prediction"], f"{where}: field 'prediction'")
        if "references" in row:
            refs = row["references"]
            if not isinstance(refs, list) or not refs:
                raise EvalInputError(f"{where}: field 'references' must be a non-empty list of strings")
            references = tuple(_text(ref, f"{where}: field 'references'[{i}]") for i, ref in enumerate(refs))
        elif "reference" in row:
            references = (_text(row["reference"], f"{where}: field 'reference'"),)
        else:
            raise EvalInputError(
                f"{where}: missing field 'reference' (or 'references') (row fields: {', '.join(sorted(row))})"
            )
        records.append(PredictionRecord(prediction=prediction, references=references))
    return records


def load_prediction_records(uri: str) -> list[PredictionRecord]:
    """Read a .jsonl/.json/.csv/.parquet file (local or s3://) with the trainer's reader, then validate."""
    try:
        rows = read_rows(uri)
    except DataError as error:
        raise EvalInputError(str(error)) from None
    return records_from_rows(rows, uri)
