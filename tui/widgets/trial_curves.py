"""A sweep's trial curves in the terminal: the values each trial reported, pruned ones marked.

The best trial is drawn green on top, the selected one white, pruned ones red
with an ``x`` where the pruner stopped them, the rest grey; the border says so. Keeps what it drew
(`curves`) so a test — or a refresh — can see what is on screen.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

from mlbox.textsafe import visible
from mlbox.tui.views.format import inert
from mlbox.tui.views.sweeps import Curve

COLORS = {"best": "green+", "selected": "white", "pruned": "red", "failed": "magenta", "other": "gray"}


def color(curve: Curve) -> str:
    if curve.best:
        return COLORS["best"]
    if curve.selected:
        return COLORS["selected"]
    if curve.state in ("pruned", "failed"):
        return COLORS[curve.state]
    return COLORS["other"]


class TrialCurves(PlotextPlot):
    DEFAULT_CSS = """
    TrialCurves {
        height: 1fr;
        min-height: 8;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.curves: list[Curve] = []
        self.plot_title = ""
        self.metric = ""

    def on_mount(self) -> None:
        super().on_mount()
        self._draw()

    def show(self, curves: Sequence[Curve], *, title: str, metric: str) -> None:
        curves = list(curves)
        if curves == self.curves and title == self.plot_title and metric == self.metric:
            return
        self.curves, self.plot_title, self.metric = curves, title, metric
        self._draw()

    def _draw(self) -> None:
        """No plotext legend: it sits over the top-left of the plot, where a pruned trial's
        high values are; the border's subtitle says what the colours mean instead."""
        plt = self.plt
        plt.clear_data()
        for c in self.curves:
            marker = "braille" if len(c.steps) > 2 else "●"
            plt.plot(c.steps, c.values, marker=marker, color=color(c))
            if c.state == "pruned":
                plt.scatter(c.steps[-1:], c.values[-1:], marker="x", color=COLORS["pruned"])
        plt.title(visible(self.plot_title) if self.curves else "no values reported yet")  # a sweep name
        plt.xlabel("step" if self.curves else "")
        self.border_subtitle = inert(legend(self.curves))
        self.refresh()


def legend(curves: Sequence[Curve]) -> str:
    """``green: t3 best · white: t5 · red x: pruned (4)``."""
    parts = [f"green: {c.label}" for c in curves if c.best]
    parts += [f"white: {c.label}" for c in curves if c.selected and not c.best]
    pruned = sum(1 for c in curves if c.state == "pruned")
    if pruned:
        parts.append(f"red x: pruned ({pruned})")
    if any(c.state == "failed" for c in curves):
        parts.append("magenta: failed")
    return " · ".join(parts)
