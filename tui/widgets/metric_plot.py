"""Metric curves plotted in the terminal (plotext, braille dots).

Keeps the series it drew (`series`), so a test — or a live refresh — can
see what is on screen. NaN and ±inf points are left out of the curve: a
plot cannot place them, and the metrics table still shows them.

How the curves are drawn is a `CurveOptions` (x axis, EMA smoothing, log y;
`views.curves`): the screen steps it from the keyboard. A smoothed curve is
drawn over its raw points, dimmed; the lowest, highest and last raw values
are marked (▼ ▲ ●) and named in the title when one curve is shown.

A `compact` plot (one of `MetricGrid`'s small charts) leaves the options out
of its title (the grid names them once) and names the marks by their glyphs
(``▼0.05 ▲2.1 ●0.06``), so the title fits a narrow chart. ``colors`` pins a
curve's colour to its label, so one run keeps its colour on every chart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from textual.app import RenderResult
from textual_plotext import PlotextPlot

from mlbox.textsafe import visible
from mlbox.tracking.series import Chunk
from mlbox.tui.views import curves
from mlbox.tui.views import format as fmt
from mlbox.tui.views.curves import CurveOptions

Series = tuple[list[int], list[float]]
LEGEND_CHARS = 20
"""A legend entry's longest label: many runs' names must not push the plot away."""
MARKED_CURVES = 3
"""Min/max/last marks are drawn for this many curves at most (more is clutter)."""


def finite_times(chunk: Chunk) -> list[float]:
    """The timestamps of the points `finite` keeps."""
    return [t for t, v in zip(chunk.ts, chunk.values, strict=True) if math.isfinite(v)]


def legend_label(label: str) -> str:
    label = visible(label)
    return label if len(label) <= LEGEND_CHARS else label[: LEGEND_CHARS - 1] + "…"


def finite(chunk: Chunk) -> Series:
    """Steps and values of the points a plot can place."""
    steps: list[int] = []
    values: list[float] = []
    for s, v in zip(chunk.steps, chunk.values, strict=True):
        if math.isfinite(v):
            steps.append(s)
            values.append(v)
    return steps, values


def mark_note(m: curves.Marks, *, compact: bool = False) -> str:
    """The lowest, highest and last values as the title names them."""
    low, high, last = (fmt.number(v, 4) for v in (m.low[1], m.high[1], m.last[1]))
    if compact:
        return f"▼{low} ▲{high} ●{last}"
    return f"min {low}  max {high}  last {last}"


class MetricPlot(PlotextPlot):
    DEFAULT_CSS = """
    MetricPlot {
        height: 1fr;
        min-height: 8;
    }
    """

    def __init__(
        self,
        *,
        id: str | None = None,
        empty: str = "no metric selected",
        compact: bool = False,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.compact = compact
        self.curve_colors: dict[str, str] = {}
        self.legend = True
        self.series: dict[str, Series] = {}
        self.times: dict[str, list[float]] = {}
        self.empty = empty
        self.plot_title = ""
        self.options = CurveOptions()
        self.drawn: dict[str, tuple[list[float], list[float]]] = {}
        self._calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        """The plotext calls that draw the plot, replayed before each build (`render`)."""
        """What was drawn for each label after the options (x, y): for tests and the benchmark."""

    def on_mount(self) -> None:
        super().on_mount()
        self._draw()

    def show_series(
        self,
        series: Mapping[str, Chunk],
        title: str = "",
        *,
        colors: Mapping[str, str] | None = None,
        legend: bool = True,
    ) -> None:
        """Replace the curves: one line per label, in the order given (``colors``: a colour per
        label, else plotext's sequence; ``legend`` False: no legend, another chart shows it)."""
        self.curve_colors = dict(colors or {})
        self.legend = legend
        self.series = {label: finite(chunk) for label, chunk in series.items()}
        self.times = {label: finite_times(chunk) for label, chunk in series.items()}
        self.plot_title = title
        self._draw()

    def set_options(self, options: CurveOptions) -> None:
        self.options = options
        self._draw()

    def render(self) -> RenderResult:
        """The plot built from its data again: plotext's build rescales the data it holds in
        place (log y), so a second build of the same data (any repaint) would take the log twice.
        The theme first: a curve without a colour of its own takes the next of the theme's, so
        curves drawn before the first paint get the same colours as those drawn after it."""
        self._plot.theme(self._get_plotext_theme_name(self.app.theme))
        self._replay()
        return super().render()

    def _replay(self) -> None:
        plt = self.plt
        plt.clear_data()
        for name, args, kwargs in self._calls:
            getattr(plt, name)(*args, **kwargs)

    def _draw(self) -> None:
        calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

        def plt_call(name: str, *args: Any, **kwargs: Any) -> None:
            calls.append((name, args, kwargs))

        opts = self.options
        starts = [ts[0] for ts in self.times.values() if ts]
        t0 = min(starts) if starts else None  # relative time: since the first run's first point
        ends = [ts[-1] for ts in self.times.values() if ts]
        label_x, per = curves.x_label(opts.x, (max(ends) - t0) if ends and t0 is not None else 0.0)
        self.drawn = {}
        notes: list[str] = []
        marked = len(self.series) <= MARKED_CURVES
        for label, (steps, values) in self.series.items():
            if not steps:
                continue
            xs = [x / per for x in curves.x_values(steps, self.times.get(label, []), opts.x, t0)]
            ys = curves.ema(values, opts.smoothing)
            raw_x, raw_y = xs, values
            if opts.log_y:
                xs, ys = curves.log_safe(xs, ys)
                raw_x, raw_y = curves.log_safe(raw_x, raw_y)
            if not xs:
                continue
            self.drawn[label] = (xs, ys)
            if opts.smoothing and len(raw_x) > 2:
                plt_call(
                    "plot", raw_x, raw_y, marker="braille", color="gray"
                )  # the raw points under the smoothed
            # braille dots draw a fine curve; a lone point (a baseline's one value) needs a bigger mark
            plt_call(
                "plot",
                xs,
                ys,
                label=legend_label(label) if self.legend else None,
                marker="braille" if len(xs) > 2 else "●",
                **({"color": self.curve_colors[label]} if label in self.curve_colors else {}),
            )
            m = curves.marks(raw_x, raw_y)
            if marked and m is not None and len(raw_x) > 1:
                plt_call("scatter", [m.low[0]], [m.low[1]], marker="▼", color="cyan")
                plt_call("scatter", [m.high[0]], [m.high[1]], marker="▲", color="orange")
                plt_call("scatter", [m.last[0]], [m.last[1]], marker="●", color="white")
                if len(self.series) == 1:
                    notes.append(mark_note(m, compact=self.compact))
        plotted = bool(self.drawn)
        plt_call("yscale", "log" if opts.log_y else "linear")
        described = [] if self.compact else [opts.describe()]
        title = "  ·  ".join([visible(self.plot_title), *described, *notes])  # a run name, a metric key
        plt_call("title", title if plotted else self.empty)
        plt_call("xlabel", label_x if plotted else "")
        self._calls = calls
        self._replay()
        self.refresh()
