"""The graphs' axes where every point is one value far from zero: a clock that jumped
back by years gave an RTT of -1.8e16 ms at -1.8e13 s (a fuzzed capture), where a step of
1e-3 s vanishes in the last digit and the plot had no width to divide by."""

from __future__ import annotations

import re

import pytest

from capdissect.report.diagrams.graph import Plot, Series, svg

NUMBER = re.compile(r'(?<![\w-])(?:x|y|x1|x2|y1|y2|cx|cy)="([^"]+)"')


@pytest.mark.parametrize("x", [-18445148600733.27, 0.0, 5.0, 1.8e15])
@pytest.mark.parametrize("y", [-1.8445148600733268e16, 0.0, 2.0**60])
def test_one_point_far_from_zero_is_drawn_inside_the_figure(x: float, y: float) -> None:
    series = Series("RTT", "#1f77b4", "dots", ((x, y),), (1,))
    figure = svg(Plot("Round-trip time, connection 1", "time (s)", "RTT (ms)", (series,)))
    width, height = (float(v) for v in re.search(r'viewBox="0 0 (\S+) (\S+)"',
                                                  figure).groups())  # type: ignore[union-attr]
    values = [float(v) for v in NUMBER.findall(figure)]
    assert values and all(0 <= v <= max(width, height) for v in values)
