"""Bad EvalJob input fails with a clear message before any model is loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kubetune_evaluator.entrypoint import load_eval_spec_title
from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.model_loading import LoadedModel
from kubetune_evaluator.runner import run_eval
from kubetune_operator.cli import app


def _manifest(tmp_path: Path, rows: list[dict[str, Any]] | None, **spec: Any) -> Path:
    data = tmp_path / "data.jsonl"
    if rows is not None:
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    document = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "EvalJob",
        "metadata": {"name": "bad"},
        "spec": {
            # The model does not exist: reaching the loader would fail differently.
            "model": {"uri": str(tmp_path / "no-such-model")},
            "dataset": {"uri": str(data), "split": "all"},
            "tasks": [{"name": "qa", "templates": [{"prompt": "Q: {question}", "completion": " {answer}"}]}],
            "output": {"uri": str(tmp_path / "out")},
            **spec,
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _never_load(*_: Any, **__: Any) -> LoadedModel:
    raise AssertionError("a model was loaded although the input is bad")


def _run(path: Path) -> None:
    spec, _ = load_eval_spec_title(path)
    run_eval(spec, load=_never_load)


def test_missing_reference_field_names_row_and_field(tmp_path: Path) -> None:
    path = _manifest(tmp_path, [{"question": "2+2?", "answer": "4"}, {"question": "3+3?"}])
    with pytest.raises(EvalInputError, match=r"data.jsonl: row 2: .*'answer'"):
        _run(path)


def test_empty_dataset(tmp_path: Path) -> None:
    path = _manifest(tmp_path, [])
    with pytest.raises(EvalInputError, match="empty"):
        _run(path)


def test_missing_dataset(tmp_path: Path) -> None:
    path = _manifest(tmp_path, None)
    with pytest.raises(EvalInputError, match=r"data\.jsonl: dataset not found"):
        _run(path)


def test_unknown_metric_is_rejected_by_the_spec(tmp_path: Path) -> None:
    path = _manifest(tmp_path, [{"question": "q", "answer": "a"}], metrics=["rouge", "meteor"])
    with pytest.raises(EvalInputError, match=r"spec\.metrics\[1\]: Input should be 'rouge'"):
        _run(path)


def test_accuracy_without_multiple_choice_task(tmp_path: Path) -> None:
    path = _manifest(tmp_path, [{"question": "q", "answer": "a"}], metrics=["accuracy"])
    with pytest.raises(EvalInputError, match="accuracy needs a multiple-choice task"):
        _run(path)


def test_multiple_choice_task_without_accuracy(tmp_path: Path) -> None:
    rows = [{"question": "q", "choices": ["x", "y"], "answer": "x"}]
    path = _manifest(tmp_path, rows, metrics=["rouge"])
    with pytest.raises(EvalInputError, match="task\\(s\\) qa are multiple-choice; add accuracy"):
        _run(path)


def test_bad_multiple_choice_answer(tmp_path: Path) -> None:
    rows = [{"question": "q", "choices": ["x", "y"], "answer": "E"}]
    path = _manifest(
        tmp_path,
        rows,
        metrics=["accuracy"],
        tasks=[{"name": "mc", "templates": [{"prompt": "{question}", "completion": " {answer}"}]}],
    )
    with pytest.raises(EvalInputError, match=r"row 1: field 'answer' 'E'"):
        _run(path)


def test_cli_prints_the_error_without_traceback(tmp_path: Path) -> None:
    path = _manifest(tmp_path, [{"question": "2+2?"}])
    result = CliRunner().invoke(app, ["eval", str(path)])
    assert result.exit_code == 2
    assert "row 1" in result.output and "'answer'" in result.output
    assert "Traceback" not in result.output


def test_pod_entry_point_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # deferred: the evaluator (torch, transformers) cost seconds to import; collecting other tests skips them
    from kubetune_evaluator.__main__ import main  # noqa: PLC0415

    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "off")
    path = _manifest(tmp_path, [])
    assert main(["--config", str(path)]) == 2
