"""The console's SVG charts: geometry worked out on the server, gridlines on whole numbers,
bars as tall as their values, every point on the line."""

from __future__ import annotations

import pytest

from newsletter.web.console.charts import HEIGHT, bar_chart, line_chart


@pytest.mark.parametrize("values", [[0, 0], [2, 1], [4, 0, 3], [37, 5], [1_438_783, 12], [-3, 7]])
def test_gridlines_fall_on_whole_numbers_and_cover_every_value(values):
    chart = bar_chart("t", "d", [str(i) for i in range(len(values))], values)
    labels = [int(tick.label.replace(",", "")) for tick in chart.ticks]
    assert labels == sorted(labels) and len(set(labels)) == len(labels)
    assert labels[0] <= min([*values, 0]) and labels[-1] >= max(values)
    assert 0 in labels


def test_bars_are_as_tall_as_their_values_and_sit_on_zero():
    chart = bar_chart("t", "d", ["a", "b", "c"], [10, 5, 0])
    a, b, c = chart.bars
    assert a.height == pytest.approx(2 * b.height) and c.height == 0
    assert all(bar.y + bar.height == pytest.approx(chart.baseline) for bar in chart.bars)
    assert 0 < a.y < HEIGHT


def test_a_line_passes_through_every_value_left_to_right():
    chart = line_chart("t", "d", ["w1", "w2", "w3"], [3, 9, 6])
    xs = [point.x for point in chart.points]
    assert xs == sorted(xs) and len(chart.polyline.split()) == 3
    high = min(chart.points, key=lambda point: point.y)
    assert high.value == 9
