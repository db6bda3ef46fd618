"""Inline SVG charts for the HTML report (no JavaScript, no external files: the report is one file).

Hand-written because the charts are a few rectangles; a plotting library (matplotlib) would add a
large dependency to the evaluator image for the same output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

MODEL_COLOUR = "#2b6cb0"
BASELINE_COLOUR = "#a0aec0"


@dataclass(frozen=True)
class Bar:
    label: str  # e.g. "rating / rougeL"
    model: float
    model_low: float
    model_high: float
    baseline: float | None = None
    scale: float = 1.0  # full-scale value (1 for F1, 100 for BLEU, 10 for judge)


def _frac(value: float, scale: float) -> float:
    if math.isnan(value):  # nothing was scored
        return 0.0
    return min(max(value / scale, 0.0), 1.0)


def bar_chart(bars: Sequence[Bar], width: int = 720) -> Markup:
    """Horizontal bars: model (blue, with its 95% CI) and baseline (grey) per task and score."""
    row_h, label_w, pad = 34, 230, 8
    plot_w = width - label_w - 90
    height = row_h * len(bars) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        'aria-label="model vs baseline per task and score" font-family="sans-serif" font-size="12">'
    ]
    for i, bar in enumerate(bars):
        y = 10 + i * row_h
        parts.append(f'<text x="{label_w - pad}" y="{y + 17}" text-anchor="end">{escape(bar.label)}</text>')
        model_w = _frac(bar.model, bar.scale) * plot_w
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{model_w:.1f}" height="12" fill="{MODEL_COLOUR}">'
            f"<title>model {bar.model:.4f} [{bar.model_low:.4f}, {bar.model_high:.4f}]</title></rect>"
        )
        low_x = label_w + _frac(bar.model_low, bar.scale) * plot_w
        high_x = label_w + _frac(bar.model_high, bar.scale) * plot_w
        parts.append(f'<line x1="{low_x:.1f}" x2="{high_x:.1f}" y1="{y + 6}" y2="{y + 6}" stroke="#1a202c"/>')
        parts.append(f'<text x="{label_w + plot_w + 6}" y="{y + 10}">{bar.model:.3f}</text>')
        if bar.baseline is not None:
            base_w = _frac(bar.baseline, bar.scale) * plot_w
            parts.append(
                f'<rect x="{label_w}" y="{y + 14}" width="{base_w:.1f}" height="12" fill="{BASELINE_COLOUR}">'
                f"<title>baseline {bar.baseline:.4f}</title></rect>"
            )
            parts.append(
                f'<text x="{label_w + plot_w + 6}" y="{y + 24}" fill="#4a5568">{bar.baseline:.3f}</text>'
            )
    legend_y = height - 8
    parts.append(f'<rect x="{label_w}" y="{legend_y - 9}" width="10" height="10" fill="{MODEL_COLOUR}"/>')
    parts.append(f'<text x="{label_w + 14}" y="{legend_y}">model (line: 95% CI)</text>')
    parts.append(
        f'<rect x="{label_w + 170}" y="{legend_y - 9}" width="10" height="10" fill="{BASELINE_COLOUR}"/>'
    )
    parts.append(f'<text x="{label_w + 184}" y="{legend_y}">baseline</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def histogram_counts(values: Sequence[float], scale: float, bins: int) -> list[int]:
    counts = [0] * bins
    for value in values:
        if not math.isnan(value):
            counts[min(int(_frac(value, scale) * bins), bins - 1)] += 1
    return counts


def histogram(
    title: str, model: Sequence[float], baseline: Sequence[float] | None, scale: float = 1.0, bins: int = 10
) -> Markup:
    """Distribution of per-sample scores, model and baseline side by side in each bin."""
    width, height, pad = 340, 160, 24
    model_counts = histogram_counts(model, scale, bins)
    base_counts = histogram_counts(baseline, scale, bins) if baseline is not None else [0] * bins
    top = max([*model_counts, *base_counts, 1])
    bin_w = (width - 2 * pad) / bins
    plot_h = height - 2 * pad
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
        f'<text x="{pad}" y="14">{escape(title)}</text>',
    ]
    for i in range(bins):
        x = pad + i * bin_w
        for offset, count, colour in (
            (0.0, model_counts[i], MODEL_COLOUR),
            (0.5, base_counts[i], BASELINE_COLOUR),
        ):
            if baseline is None and colour == BASELINE_COLOUR:
                continue
            h = count / top * plot_h
            parts.append(
                f'<rect x="{x + offset * bin_w:.1f}" y="{height - pad - h:.1f}" width="{bin_w / 2 - 1:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{count}</title></rect>'
            )
    parts.append(f'<text x="{pad}" y="{height - 6}">0</text>')
    parts.append(f'<text x="{width - pad}" y="{height - 6}" text-anchor="end">{scale:g}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
