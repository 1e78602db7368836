"""Charts for the console, drawn on the server as SVG: this module works out the geometry
(plain numbers), `templates/console/_bar_chart.svg.j2` and `_line_chart.svg.j2` draw it.
No script and nothing from a CDN; the console's CSP (img-src 'self', no inline styles)
needs nothing more, since the SVG is part of the page and styled by `reports.css`.

Each chart has a title and a description for screen readers, and the page shows the same
numbers in a table beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WIDTH = 720
HEIGHT = 240
LEFT = 56  # room for the value axis' labels
BOTTOM = 28  # room for the category labels
TOP = 12


def nice_top(value: float) -> int:
    """A round number at or above `value` for the value axis (1, 2, 5 × 10ⁿ)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return int(step * power) if step * power >= 1 else 1
    return int(10 * power)


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the category, shown under some bars and in the bar's tooltip
    value: int
    show_label: bool
    negative: bool = False


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    value: int
    show_label: bool


@dataclass(frozen=True)
class Chart:
    title: str
    description: str
    width: int
    height: int
    left: int
    baseline: float  # the y of value 0
    ticks: list[Tick]
    bars: list[Bar]
    points: list[Point]

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def _steps(span: int) -> int:
    """How many gridlines divide `span` (a nice_top) into whole numbers: 4 or 5 of them,
    fewer for a span of 1 or 2."""
    return next(steps for steps in (4, 5, 2, 1) if span % steps == 0 and steps <= span)


def _axis(low: int, high: int) -> tuple[int, float, list[Tick]]:
    """The axis' top value, pixels per unit, and its ticks (whole numbers only)."""
    # Below zero too: the same round size each way, so zero is a gridline.
    size = nice_top(max(high, -low, 1))
    top = size if high > 0 or low >= 0 else 0
    bottom = -size if low < 0 else 0
    scale = (HEIGHT - TOP - BOTTOM) / (top - bottom)
    steps = _steps(size) * (top - bottom) // size
    ticks = []
    for i in range(steps + 1):
        value = bottom + (top - bottom) * i // steps
        ticks.append(Tick(TOP + (top - value) * scale, f"{value:,}"))
    return top, scale, ticks


def _every(count: int, wanted: int = 12) -> int:
    """Label every n-th category so at most `wanted` labels show."""
    return max(1, math.ceil(count / wanted))


def bar_chart(title: str, description: str, labels: list[str], values: list[int]) -> Chart:
    """Bars from zero (down for negative values)."""
    top, scale, ticks = _axis(min(values, default=0), max(values, default=0))
    baseline = TOP + top * scale
    slot = (WIDTH - LEFT) / max(len(values), 1)
    every = _every(len(values))
    bars = [
        Bar(
            x=LEFT + i * slot + slot * 0.1,
            y=baseline - value * scale if value >= 0 else baseline,
            width=slot * 0.8,
            height=abs(value) * scale,
            label=label,
            value=value,
            show_label=i % every == 0,
            negative=value < 0,
        )
        for i, (label, value) in enumerate(zip(labels, values, strict=True))
    ]
    return Chart(title, description, WIDTH, HEIGHT, LEFT, baseline, ticks, bars, [])


def line_chart(title: str, description: str, labels: list[str], values: list[int]) -> Chart:
    """A line through the values, its axis from zero."""
    top, scale, ticks = _axis(min(values, default=0), max(values, default=0))
    baseline = TOP + top * scale
    step = (WIDTH - LEFT - 50) / max(len(values) - 1, 1)  # room for the last label
    every = _every(len(values))
    points = [
        Point(
            x=LEFT + 10 + i * step,
            y=baseline - value * scale,
            label=label,
            value=value,
            show_label=i % every == 0,
        )
        for i, (label, value) in enumerate(zip(labels, values, strict=True))
    ]
    return Chart(title, description, WIDTH, HEIGHT, LEFT, baseline, ticks, [], points)
