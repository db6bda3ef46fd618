"""The self-contained HTML report (jinja2 template + inline SVG), pure: outcome in, HTML text out."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import jinja2

from kubetune_evaluator.svg_charts import Bar, bar_chart, histogram

if TYPE_CHECKING:
    from kubetune_evaluator.runner import EvalOutcome

WORST_SAMPLES = 5
SCALES = {"bleu": 100.0, "judgeScore": 10.0}
PREFERRED_SCORES = ("rougeL", "bertscoreF1", "judgeScore", "exactMatch", "bleu")

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("kubetune_evaluator", "templates"),
    autoescape=True,  # prompts and predictions are untrusted text
    undefined=jinja2.StrictUndefined,
)


def _primary_score(scores: dict[str, Any]) -> str | None:
    for name in PREFERRED_SCORES:
        if name in scores:
            return name
    return next(iter(scores), None)


def _clean(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "n/a"


def _worst(outcome: EvalOutcome) -> list[dict[str, Any]]:
    groups = []
    for task in (t for t in outcome.tasks if t.kind == "generation"):
        outputs = outcome.model.outputs.get(task.name, {})
        series_by_name = {name: s for output in outputs.values() for name, s in output.scores.items()}
        score = _primary_score(series_by_name)
        if score is None:
            continue
        values = series_by_name[score].per_sample
        order = sorted(range(len(values)), key=lambda i: (not math.isnan(values[i]), values[i]))
        samples = []
        for i in order[:WORST_SAMPLES]:
            samples.append(
                {
                    "row": task.rows[i],
                    "prompt": outcome.model.prompts[task.name][i],
                    "reference": task.generation[i].references[0],
                    "prediction": outcome.model.predictions[task.name][i],
                    "baseline_prediction": outcome.baseline.predictions[task.name][i]
                    if outcome.baseline
                    else "",
                    "score": _clean(float(values[i])),
                }
            )
        groups.append({"task": task.name, "score": score, "samples": samples})
    return groups


def _histograms(outcome: EvalOutcome) -> list[Any]:
    charts = []
    for task in outcome.tasks:
        outputs = outcome.model.outputs.get(task.name, {})
        series_by_name = {name: s for output in outputs.values() for name, s in output.scores.items()}
        score = _primary_score(series_by_name) if task.kind == "generation" else "accuracyNorm"
        if score is None or score not in series_by_name:
            continue
        baseline = None
        if outcome.baseline is not None:
            base_series = {
                name: s
                for output in outcome.baseline.outputs.get(task.name, {}).values()
                for name, s in output.scores.items()
            }
            baseline = list(base_series[score].per_sample) if score in base_series else None
        charts.append(
            histogram(
                f"{task.name}: {score} per sample",
                list(series_by_name[score].per_sample),
                baseline,
                scale=SCALES.get(score, 1.0),
            )
        )
    return charts


def render_report(outcome: EvalOutcome, title: str) -> str:
    score_rows = []
    bars = []
    for task in outcome.tasks:
        for name, entry in outcome.task_scores.get(task.name, {}).items():
            score_rows.append(
                {
                    "task": task.name,
                    "name": name,
                    "model": entry["model"],
                    "baseline": entry.get("baseline"),
                    "delta": entry.get("delta"),
                    "samples": len(task),
                }
            )
            bars.append(
                Bar(
                    label=f"{task.name} / {name}",
                    model=entry["model"]["value"],
                    model_low=entry["model"]["low"],
                    model_high=entry["model"]["high"],
                    baseline=entry["baseline"]["value"] if "baseline" in entry else None,
                    scale=SCALES.get(name, 1.0),
                )
            )
    return _ENV.get_template("report.html.j2").render(
        title=title,
        verdict=outcome.verdict,
        reasons=outcome.reasons,
        model=outcome.results["model"],
        baseline=outcome.results["baseline"],
        split=outcome.results["split"],
        score_rows=score_rows,
        bar_chart=bar_chart(bars),
        histograms=_histograms(outcome),
        worst=_worst(outcome),
        signatures=outcome.signatures,
    )
