"""The model in the loop's accuracy as labels grow, plotted like the other curves in the TUI.

plotext braille dots (a lone point as ``●``), the lowest, highest and last points marked ▼ ▲ ● as
`MetricPlot` marks them (`views.curves.marks`), values in `views.format.number`'s digits. The x axis
is the number of labels the model learned from at each retraining, y its cross-validated accuracy;
points without an accuracy (too few labels to hold any out) are left out. Keeps what it drew
(`drawn`) so a test can see what is on screen.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

from mlbox.labeling.schemas import ModelAccuracy
from mlbox.textsafe import visible
from mlbox.tui.views import curves
from mlbox.tui.views import format as fmt


def points(history: Sequence[ModelAccuracy]) -> tuple[list[float], list[float]]:
    """(labels, accuracy) of the retrainings that measured one, oldest first."""
    xs = [float(h.labels) for h in history if h.accuracy is not None]
    ys = [float(h.accuracy) for h in history if h.accuracy is not None]
    return xs, ys


def title_of(history: Sequence[ModelAccuracy]) -> tuple[str, str]:
    """The plot's title and the border's subtitle for the latest measured point:
    (``0.74 at 30 labels``, ``5-fold CV · digits-model/3``); short, as the chart sits beside the task."""
    measured = [h for h in history if h.accuracy is not None]
    if not measured:
        return "", ""
    last = measured[-1]
    model = last.model + ("" if last.version is None else f"/{last.version}")
    return f"{fmt.number(last.accuracy, 3)} at {last.labels} labels", f"{last.method} · {visible(model)}"


class AccuracyPlot(PlotextPlot):
    DEFAULT_CSS = """
    AccuracyPlot {
        height: 1fr;
        min-height: 8;
    }
    """

    def __init__(self, *, id: str | None = None, empty: str = "no retraining yet") -> None:
        super().__init__(id=id)
        self.empty = empty
        self.history: list[ModelAccuracy] = []
        self.plot_title = ""
        self.drawn: tuple[list[float], list[float]] = ([], [])
        """The (labels, accuracy) points on screen: for tests."""

    def on_mount(self) -> None:
        super().on_mount()
        self._draw()

    def show_history(self, history: Sequence[ModelAccuracy], *, empty: str | None = None) -> None:
        """Draw ``history`` (oldest first); ``empty`` is what an empty chart says."""
        history = list(history)
        empty = self.empty if empty is None else empty
        if self.is_mounted and history == self.history and empty == self.empty:
            return  # drawn already: a fetch between labels must not redraw the same chart
        self.history = history
        self.empty = empty
        self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        xs, ys = points(self.history)
        self.drawn = (xs, ys)
        self.plot_title, subtitle = title_of(self.history)
        self.border_subtitle = subtitle
        if xs:
            plt.plot(xs, ys, marker="braille" if len(xs) > 2 else "●")
            m = curves.marks(xs, ys)
            if m is not None and len(xs) > 1:
                plt.scatter([m.low[0]], [m.low[1]], marker="▼", color="cyan")
                plt.scatter([m.high[0]], [m.high[1]], marker="▲", color="orange")
                plt.scatter([m.last[0]], [m.last[1]], marker="●", color="white")
        plt.title(self.plot_title if xs else self.empty)
        plt.xlabel("labels" if xs else "")
        self.refresh()
