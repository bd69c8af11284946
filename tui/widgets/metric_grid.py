"""Several metrics as one small chart each (issue 18: "several metrics on one chart or one chart each").

Overlaid on one chart, metrics of different ranges (a loss near 2, an
accuracy near 0.9) flatten each other; here each metric gets its own chart,
its own y scale and its own min/max/last marks (`MetricPlot` in compact
form). The charts fill a grid as wide as the room allows (two columns of at
least `MIN_CHART_WIDTH` cells each, ...), each at least `MIN_CHART_HEIGHT`
rows high; more charts than fit scroll. The curve options (x axis,
smoothing, log y) are the screen's, the same on every chart, and named once
in the grid's border.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import Static

from mlbox.tracking.series import Chunk
from mlbox.tui.views.curves import CurveOptions
from mlbox.tui.widgets.metric_plot import MetricPlot

MIN_CHART_WIDTH = 36
"""The narrowest chart: y tick labels plus a curve one can read."""
MIN_CHART_HEIGHT = 9
CURVE_COLORS: tuple[str, ...] = (
    "blue+",
    "green+",
    "red+",
    "cyan+",
    "magenta+",
    "yellow",
    "blue",
    "green",
    "red",
    "magenta",
    "gold",
    "orange+",
)
"""plotext's colour sequence without the greys and the marks' colours (gray under a smoothed curve)."""


def colors_for(labels: Sequence[str]) -> dict[str, str]:
    """A colour per label, by position: a run keeps its colour on every chart of a grid."""
    return {label: CURVE_COLORS[i % len(CURVE_COLORS)] for i, label in enumerate(labels)}


def grid_shape(charts: int, width: int, height: int) -> tuple[int, int]:
    """Columns of the grid and the height of each row for ``charts`` charts in ``width`` x ``height``
    cells: as many columns as fit at `MIN_CHART_WIDTH`, the rows sharing the height down to
    `MIN_CHART_HEIGHT` (below it the grid scrolls). Pure."""
    if charts <= 0:
        return 1, max(height, 1)
    columns = max(1, min(charts, width // MIN_CHART_WIDTH))
    rows = math.ceil(charts / columns)
    return columns, max(MIN_CHART_HEIGHT, height // rows)


class MetricGrid(Container):
    DEFAULT_CSS = """
    MetricGrid {
        layout: grid;
        grid-size: 1;
        grid-gutter: 0 1;
        height: 1fr;
        overflow-y: auto;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
    }
    MetricGrid > MetricPlot {
        height: 100%;
        min-height: 0;
    }
    MetricGrid > .empty {
        color: $text-muted;
        padding: 1 2;
    }
    """

    def __init__(self, *, id: str | None = None, empty: str = "no metric selected") -> None:
        super().__init__(id=id)
        self.empty = empty
        self.options = CurveOptions()
        self.charts: dict[str, dict[str, Chunk]] = {}
        self.plots: list[MetricPlot] = []
        """One per chart, in the order of `charts` (for tests and the benchmark)."""

    def compose(self) -> ComposeResult:
        yield Static(self.empty, classes="empty", markup=False)

    def on_mount(self) -> None:
        self._describe()

    def on_resize(self) -> None:
        self._arrange()

    def show_charts(
        self,
        charts: Mapping[str, Mapping[str, Chunk]],
        options: CurveOptions,
        *,
        colors: Mapping[str, str] | None = None,
        legend: bool = True,
    ) -> None:
        """One chart per entry of ``charts`` (its title: a metric key), each holding its curves
        (label: series); ``colors``: a colour per curve label, the same on every chart, whose
        legend the first chart shows (``legend`` False: none, the titles say it all). The
        charts already mounted are reused, so a live refresh does not rebuild them."""
        self.charts = {title: dict(series) for title, series in charts.items()}
        self.options = options
        while len(self.plots) > len(self.charts):
            self.plots.pop().remove()
        fresh = [MetricPlot(compact=True) for _ in range(len(self.charts) - len(self.plots))]
        self.plots.extend(fresh)
        for index, (plot, (title, series)) in enumerate(zip(self.plots, self.charts.items(), strict=True)):
            plot.options = options
            plot.show_series(series, title=title, colors=colors, legend=legend and index == 0)
        if fresh:
            self.mount_all(fresh)
        self.query_one(".empty", Static).display = not self.charts
        self._arrange()
        self._describe()

    def set_options(self, options: CurveOptions) -> None:
        self.options = options
        for plot in self.plots:
            plot.set_options(options)
        self._describe()

    def _describe(self) -> None:
        self.border_title = f"one chart each · {self.options.describe()}"

    def _arrange(self) -> None:
        region = self.scrollable_content_region
        columns, row_height = grid_shape(len(self.plots), region.width, region.height)
        self.styles.grid_size_columns = columns  # an unchanged style does not lay out again
        self.styles.grid_rows = str(row_height)
