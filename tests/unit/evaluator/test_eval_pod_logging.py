"""Evaluator pods log JSON lines, like trainer pods and the operator's pod (kubetune_operator.api.logs)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubetune_evaluator.__main__ import main
from kubetune_operator.api.logs import JsonLinesFormatter


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_pod_entry_point_logs_json_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "off")
    monkeypatch.setenv("KUBETUNE_TERMINATION_LOG", str(tmp_path / "termination-log"))
    assert main(["--config", str(tmp_path / "absent.yaml")]) == 2  # InvalidSpec, after logging is set up
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler.formatter, JsonLinesFormatter)
