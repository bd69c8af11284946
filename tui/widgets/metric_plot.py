"""Metric curves plotted in the terminal (plotext, braille dots).

Keeps the series it drew (`series`), so a test — or a live refresh — can
see what is on screen. NaN and ±inf points are left out of the curve: a
plot cannot place them, and the metrics table still shows them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from textual_plotext import PlotextPlot

from mlbox.textsafe import visible
from mlbox.tracking.series import Chunk

Series = tuple[list[int], list[float]]


def finite(chunk: Chunk) -> Series:
    """Steps and values of the points a plot can place."""
    steps: list[int] = []
    values: list[float] = []
    for s, v in zip(chunk.steps, chunk.values, strict=True):
        if math.isfinite(v):
            steps.append(s)
            values.append(v)
    return steps, values


class MetricPlot(PlotextPlot):
    DEFAULT_CSS = """
    MetricPlot {
        height: 1fr;
        min-height: 8;
    }
    """

    def __init__(self, *, id: str | None = None, empty: str = "no metric selected") -> None:
        super().__init__(id=id)
        self.series: dict[str, Series] = {}
        self.empty = empty
        self.plot_title = ""

    def on_mount(self) -> None:
        super().on_mount()
        self._draw()

    def show_series(self, series: Mapping[str, Chunk], title: str = "") -> None:
        """Replace the curves: one line per label, in the order given."""
        self.series = {label: finite(chunk) for label, chunk in series.items()}
        self.plot_title = title
        self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plotted = False
        for label, (steps, values) in self.series.items():
            if steps:
                # braille dots draw a fine curve; a lone point (a baseline's one value) needs a bigger mark
                plt.plot(steps, values, label=visible(label), marker="braille" if len(steps) > 2 else "●")
                plotted = True
        plt.title(visible(self.plot_title) if plotted else self.empty)  # a run name, a metric key
        plt.xlabel("step" if plotted else "")
        self.refresh()
