"""The demo's HTML report (pure: outcomes in, one self-contained HTML file out): the explanation in words, the
comparison table, and per method the training loss curve and the base-vs-tuned bars of both tasks.

The bars are the evaluator's own chart (`kubetune_evaluator.svg_charts.bar_chart`, the one in every EvalJob
report); the loss curve is one SVG path. No scripts, no external files: it opens anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import jinja2
from markupsafe import Markup, escape

from kubetune_devtools.demo.comparison import MethodOutcome, TaskChange
from kubetune_evaluator.svg_charts import BASELINE_COLOUR as AXIS
from kubetune_evaluator.svg_charts import MODEL_COLOUR, Bar, bar_chart

_TEMPLATE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 900px; color: #1a202c; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #cbd5e0; padding: 4px 8px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.gain { color: #276749; } .loss { color: #c53030; } .Failed { color: #c53030; font-weight: bold; }
.Passed { color: #276749; font-weight: bold; } section { margin-top: 2em; }
</style></head>
<body>
<h1>{{ title }}</h1>
{% for line in explanation %}<p>{{ line }}</p>{% endfor %}
<table>
<tr><th>method</th><th>target: {{ first.target.task }} {{ first.target.score }}</th>
<th>general: {{ first.general.task }} {{ first.general.score }}</th><th>EvalJob verdict</th></tr>
{% for o in outcomes %}
<tr><td>{{ o.method }}</td>
{% for c in (o.target, o.general) %}
<td class="num {{ c.direction.split()[0] }}">{{ "%.3f"|format(c.base) }} → {{ "%.3f"|format(c.tuned) }}
({{ "%+.3f"|format(c.delta) }}, 95% CI [{{ "%+.3f"|format(c.low) }}, {{ "%+.3f"|format(c.high) }}]):
{{ c.direction }}</td>
{% endfor %}
<td class="{{ o.verdict }}">{{ o.verdict or "n/a" }}</td></tr>
{% endfor %}
</table>
{% for o, loss, bars in charts %}
<section>
<h2>{{ o.method }}</h2>
<h3>Training loss</h3>
{{ loss }}
<h3>Base vs tuned, per task</h3>
{{ bars }}
{% if o.verdict_reasons %}<p>Verdict {{ o.verdict }}: {{ o.verdict_reasons|join("; ") }}</p>{% endif %}
</section>
{% endfor %}
</body></html>
"""
)


def loss_curve(history: Sequence[tuple[int, float]], width: int = 720, height: int = 220) -> Markup:
    """Training loss per optimiser step as one SVG path, with the first and last values labelled."""
    pad_left, pad, plot_w = 56, 24, width - 56 - 24
    plot_h = height - 2 * pad
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        'aria-label="training loss per step" font-family="sans-serif" font-size="12">',
        f'<line x1="{pad_left}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="{AXIS}"/>',
        f'<line x1="{pad_left}" y1="{pad}" x2="{pad_left}" y2="{height - pad}" stroke="{AXIS}"/>',
    ]
    if history:
        steps = [step for step, _ in history]
        losses = [loss for _, loss in history]
        first_step, last_step = min(steps), max(steps)
        top = max(losses)
        span = max(last_step - first_step, 1)

        def point(step: int, loss: float) -> str:
            x = pad_left + (step - first_step) / span * plot_w
            y = height - pad - (loss / top if top > 0 else 0.0) * plot_h
            return f"{x:.1f} {y:.1f}"

        path = "M" + " L".join(point(step, loss) for step, loss in history)
        parts.append(f'<path d="{path}" fill="none" stroke="{MODEL_COLOUR}" stroke-width="2"/>')
        parts.append(f'<text x="{pad_left - 6}" y="{pad + 4}" text-anchor="end">{top:.2f}</text>')
        parts.append(f'<text x="{pad_left - 6}" y="{height - pad}" text-anchor="end">0</text>')
        parts.append(f'<text x="{pad_left}" y="{height - 6}">step {first_step}</text>')
        parts.append(
            f'<text x="{width - pad}" y="{height - 6}" text-anchor="end">step {last_step} '
            f"(loss {escape(f'{losses[-1]:.3f}')})</text>"
        )
    else:
        parts.append(f'<text x="{pad_left + 8}" y="{height / 2}">no training history</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _bar(change: TaskChange) -> Bar:
    # The evaluator's CI on the tuned bar is of the model's score; the table gives the CI of the delta.
    return Bar(
        label=f"{change.task} / {change.score}",
        model=change.tuned,
        model_low=change.tuned,
        model_high=change.tuned,
        baseline=change.base,
    )


def render_demo_report(outcomes: Sequence[MethodOutcome], explanation: Sequence[str], title: str) -> str:
    charts = [
        (outcome, loss_curve(outcome.loss_history), bar_chart([_bar(outcome.target), _bar(outcome.general)]))
        for outcome in outcomes
    ]
    return _TEMPLATE.render(
        title=title, explanation=explanation, outcomes=outcomes, first=outcomes[0], charts=charts
    )
