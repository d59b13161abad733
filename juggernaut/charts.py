"""The HQ's one chart component: server-rendered SVG with axes, units and values on hover.

Build a chart with ``chart_build`` and render it with ``{% chart spec %}`` (``{% load hq %}``), which
uses ``templates/components/_chart.html``. Every page draws its charts this way, so they look alike
and need no script: each bar and point carries a ``<title>`` the browser shows on hover.

    spec = chart_build(
        "Tasks done per hour and queue depth, last 24 h",
        labels=["09:00", "10:00", ...],           # one per x position (a time bucket, a day, a model…)
        series=[
            Series("done", "tasks/h", [3, 0, 5, ...]),                      # bars on the left axis
            Series("queue depth", "tasks", [1, 2, 0, ...], kind="line", axis="right"),
        ],
    )

A series on the right axis gets its own scale, so two units can share one chart.

For a comparison between named things (spend by mode, errors by service) use ``chart_rows``: one
horizontal bar per item, labels and values as HTML text so they stay readable on a phone.
"""

import math
from dataclasses import dataclass, field

WIDTH, HEIGHT = 760, 240
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 48, 48, 28, 30
MAX_X_LABELS = 8


@dataclass
class Series:
    name: str
    unit: str
    values: list[float]
    kind: str = "bar"  # bar | line
    axis: str = "left"  # left | right
    css: str = ""  # extra class for colour (chart-s0, chart-s1… by default)
    top: float | None = None  # a fixed scale (a score out of 100 runs 0–100, whatever its values)


@dataclass
class Axis:
    unit: str
    top: float
    ticks: list[dict] = field(default_factory=list)


def nice_top(value: float) -> tuple[float, float]:
    """A round axis maximum at or above ``value`` and its tick step (1, 2 or 5 × 10^k, 4-5 ticks)."""
    if value <= 0:
        return 4.0, 1.0
    raw = value / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if step < 1 and value >= 1:
        step = 1.0
    return step * math.ceil(value / step), step


def _number(value: float) -> str:
    return f"{value:g}" if abs(value) < 10000 else f"{value / 1000:g}k"


def chart_rows(title: str, *, items: list[tuple[str, float]], unit: str) -> dict:
    """Horizontal bars, one row per ``(label, value)``, scaled to the largest, for ``_chart.html``."""
    top = max((float(v) for _, v in items), default=0.0)
    return {
        "kind": "rows",
        "title": title,
        "unit": unit,
        "rows": [
            {
                "label": label,
                "value": _number(float(value)),
                "pct": round(100 * float(value) / top, 1) if top else 0,
                "hover": f"{label}: {_number(float(value))} {unit}",
            }
            for label, value in items
        ],
        "empty": not top,
    }


def chart_build(title: str, *, labels: list[str], series: list[Series], height: int = HEIGHT) -> dict:
    """Lay out bars, lines, axes and hover texts for ``_chart.html``."""
    count = max(len(labels), 1)
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = height - PAD_TOP - PAD_BOTTOM
    bottom = PAD_TOP + plot_h
    step = plot_w / count
    axes: dict[str, Axis] = {}
    for side in ("left", "right"):
        mine = [s for s in series if s.axis == side]
        if not mine:
            continue
        fixed = max((s.top for s in mine if s.top), default=None)
        top, tick = nice_top(fixed or max((v for s in mine for v in s.values), default=0))
        axis = Axis(unit=mine[0].unit, top=top)
        n = round(top / tick)
        axis.ticks = [
            {"y": round(bottom - plot_h * i / n, 1), "text": _number(tick * i)} for i in range(n + 1)
        ]
        axes[side] = axis

    def y_of(value: float, side: str) -> float:
        return round(bottom - plot_h * value / axes[side].top, 1)

    bar_series = [s for s in series if s.kind == "bar"]
    bar_w = max(step * 0.8 / max(len(bar_series), 1), 1)
    drawn = []
    for index, s in enumerate(series):
        css = s.css or f"chart-s{index}"
        item: dict = {"name": s.name, "unit": s.unit, "kind": s.kind, "css": css}
        if s.kind == "bar":
            offset = step * 0.1 + bar_series.index(s) * bar_w
            item["bars"] = [
                {
                    "x": round(PAD_LEFT + i * step + offset, 1),
                    "y": y_of(v, s.axis),
                    "w": round(bar_w, 1),
                    "h": round(bottom - y_of(v, s.axis), 1),
                    "hover": f"{labels[i] if i < len(labels) else i}: {_number(v)} {s.unit} {s.name}",
                }
                for i, v in enumerate(s.values)
            ]
        else:
            points = [
                {
                    "x": round(PAD_LEFT + (i + 0.5) * step, 1),
                    "y": y_of(v, s.axis),
                    "hover": f"{labels[i] if i < len(labels) else i}: {_number(v)} {s.unit} {s.name}",
                }
                for i, v in enumerate(s.values)
            ]
            item["points"] = points
            item["path"] = " ".join(f"{p['x']},{p['y']}" for p in points)
        drawn.append(item)
    every = max(math.ceil(count / MAX_X_LABELS), 1)
    x_labels = [
        {"x": round(PAD_LEFT + (i + 0.5) * step, 1), "text": text}
        for i, text in enumerate(labels)
        if i % every == 0 or i == count - 1
    ]
    return {
        "kind": "xy",
        "title": title,
        "w": WIDTH,
        "h": height,
        "left": PAD_LEFT,
        "right": WIDTH - PAD_RIGHT,
        "top": PAD_TOP,
        "bottom": bottom,
        "axes": axes,
        "series": drawn,
        "x_labels": x_labels,
        "label_y": bottom + 18,
        "empty": not any(v for s in series for v in s.values),
    }
