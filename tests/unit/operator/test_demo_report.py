"""The demo's comparison (target gain, general change, CI rule), its words, and its HTML report rendered in
headless Chromium: the charts draw (non-empty SVG paths and bars) and the page logs no errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from kubetune_devtools.demo.comparison import (
    MethodOutcome,
    MissingScoreError,
    TaskChange,
    comparison_table,
    explain,
    loss_history,
    task_change,
)
from kubetune_devtools.demo.report import loss_curve, render_demo_report
from kubetune_devtools.testing.browser import render


def _change(name: str, base: float, tuned: float, ci: tuple[float, float]) -> TaskChange:
    task, score = name.split("/")
    low, high = ci
    return TaskChange(task=task, score=score, base=base, tuned=tuned, delta=tuned - base, low=low, high=high)


FULL = MethodOutcome(
    method="full",
    target=_change("module/exactMatch", 0.0, 0.96, (0.88, 1.0)),
    general=_change("summarize/rougeL", 0.22, 0.08, (-0.19, -0.09)),
    verdict="Failed",
    verdict_reasons=["summarize/rougeL: 0.0800 vs baseline 0.2200 is a 63.6% regression"],
    loss_history=[(1, 7.3), (2, 4.1), (3, 1.2), (4, 0.4), (5, 0.2)],
)
LORA = MethodOutcome(
    method="lora",
    target=_change("module/exactMatch", 0.0, 0.88, (0.75, 1.0)),
    general=_change("summarize/rougeL", 0.22, 0.21, (-0.04, +0.02)),
    verdict="Passed",
    verdict_reasons=["all 10 threshold checks passed"],
    loss_history=[(1, 7.3), (2, 5.0), (3, 2.0), (4, 0.9), (5, 0.6)],
)


def test_direction_follows_the_ci() -> None:
    assert FULL.target.direction == "gain"
    assert FULL.general.direction == "loss"
    assert LORA.general.direction == "no measurable change"


def test_task_change_and_loss_history_from_the_files() -> None:
    entry = {
        "model": {"value": 0.9},
        "baseline": {"value": 0.1},
        "delta": {"value": 0.8, "low": 0.7, "high": 0.9},
    }
    results: dict[str, Any] = {"tasks": {"module": {"scores": {"exactMatch": entry}}}}
    change = task_change(results, "module", "exactMatch")
    assert (change.base, change.tuned, change.low, change.high) == (0.1, 0.9, 0.7, 0.9)
    with pytest.raises(MissingScoreError, match="summarize/rougeL"):
        task_change(results, "summarize", "rougeL")
    assert loss_history({"history": [[1, 7.25], [2, 3.5]]}) == [(1, 7.25), (2, 3.5)]


def test_table_and_explanation_name_gain_forgetting_and_verdicts() -> None:
    console = Console(width=160, record=True)
    console.print(comparison_table([FULL, LORA]))
    text = console.export_text()
    assert "target: module exactMatch" in text and "general: summarize rougeL" in text
    assert "0.22 → 0.08  -0.14 [-0.19, -0.09]" in text and "Failed" in text and "Passed" in text
    lines = explain([FULL, LORA], 0.05)
    assert len(lines) == 3
    assert "full: on the trained task `module` the model learned it" in lines[0]
    assert "lost part of what it could do before (forgetting)" in lines[0]
    assert "showed no loss its 95% CI can confirm" in lines[1]
    assert "more than 5% of the base's score" in lines[2]
    assert "(full: Failed on summarize/rougeL; lora: Passed)" in lines[2]


def test_loss_curve_is_one_path_through_every_step() -> None:
    svg = str(loss_curve([(1, 4.0), (2, 2.0), (3, 1.0)]))
    path = svg.split('<path d="')[1].split('"', maxsplit=1)[0]
    assert path.startswith("M") and path.count(" L") == 2
    assert "no training history" in str(loss_curve([]))


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="needs the Debian package chromium (hack/install-system-packages.sh browser)",
)
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    report = tmp_path / "demo-report.html"
    html = render_demo_report([FULL, LORA], explain([FULL, LORA], 0.05), title="kubetune demo")
    report.write_text(html)
    measured = render(
        report,
        """({
          paths: [...document.querySelectorAll('svg path')].map(p => p.getTotalLength()),
          bars: [...document.querySelectorAll('svg rect')].map(r => r.getBBox().width),
          svgs: document.querySelectorAll('svg').length,
          text: document.body.innerText,
        })""",
    )
    assert measured.console_errors == []
    value = measured.value
    # One loss curve and one bar chart per method; every curve is drawn with a visible length.
    assert value["svgs"] == 4
    assert len(value["paths"]) == 2 and all(length > 100 for length in value["paths"])
    # Tuned and base bars per task: the tuned `module` bar (0.96 of the scale) is wide, none is negative.
    assert max(value["bars"]) > 300 and min(value["bars"]) >= 0
    assert "lost part of what it could do before" in value["text"] and "Failed" in value["text"]


def test_the_browser_check_sees_script_errors_and_empty_paths(tmp_path: Path) -> None:
    """The check can fail: a page with an error and an empty path is reported as such."""
    if shutil.which("chromium") is None:
        pytest.skip("needs the Debian package chromium")
    page = tmp_path / "broken.html"
    page.write_text(
        '<html><body><svg width="10" height="10"><path d=""/></svg>'
        "<script>console.error('boom'); missingFunction();</script></body></html>"
    )
    measured = render(page, "[...document.querySelectorAll('svg path')].map(p => p.getTotalLength())")
    assert measured.value == [0]
    assert any("boom" in error for error in measured.console_errors)
    assert any("missingFunction" in error for error in measured.console_errors)
