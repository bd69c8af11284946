"""A sweep's analysis in the terminal: parameter importance as horizontal bars, one parameter
against the objective (a scatter, pruned trials apart) and parallel coordinates.

The screen computes what to draw (`mlbox.tui.views.sweeps`) and hands it over;
this widget only draws it, and keeps what it drew (`drawn`) so a test can see
what is on screen. Pruned trials are red: as ``x`` at the last value they
reported in the scatter, as dim lines in the parallel coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from textual_plotext import PlotextPlot

from mlbox.textsafe import visible
from mlbox.tui.views.format import inert
from mlbox.tui.views.sweeps import Importance, Line, Points

Mode = Literal["importance", "params", "coords"]
LABEL_CHARS = 16
"""An axis or bar label's longest name: long parameter names must not push the plot away."""


def short(name: str) -> str:
    name = visible(name)  # a parameter name is the user's
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"


class SweepAnalysis(PlotextPlot):
    DEFAULT_CSS = """
    SweepAnalysis {
        height: 1fr;
        min-height: 8;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.mode: Mode = "importance"
        self.importance = Importance({}, "reading the trials…")
        self.points: Points | None = None
        self.axes: list[str] = []
        self.lines: list[Line] = []
        self.metric = ""
        self.drawn: dict[str, Any] = {}
        """What the last draw put on screen, by kind: for tests."""

    def on_mount(self) -> None:
        super().on_mount()
        self._draw()

    def show_importance(self, importance: Importance) -> None:
        self.mode, self.importance = "importance", importance
        self._draw()

    def show_points(self, points: Points | None, metric: str, note: str = "") -> None:
        self.mode, self.points, self.metric = "params", points, metric
        self._draw(note)

    def show_lines(self, axes: Sequence[str], lines: Sequence[Line], metric: str) -> None:
        self.mode, self.axes, self.lines, self.metric = "coords", list(axes), list(lines), metric
        self._draw()

    def _draw(self, note: str = "") -> None:
        plt = self.plt
        plt.clear_figure()  # ticks, labels and limits of the last view go too (render sets size and theme)
        self.drawn = {}
        if self.mode == "importance":
            self._importance()
        elif self.mode == "params":
            self._points(note)
        else:
            self._lines()
        self.refresh()

    def _importance(self) -> None:
        plt = self.plt
        imp = self.importance
        if not imp.values:
            plt.title(imp.note)
            self.border_subtitle = ""
            return
        names = [short(n) for n in imp.values][::-1]  # the most important on top
        values = [round(v, 4) for v in imp.values.values()][::-1]
        plt.bar(names, values, orientation="horizontal", color="cyan", width=0.6)
        plt.xlim(0.0, 1.0)  # shares of the whole
        plt.title(imp.note)  # the border names the view; a narrow plot drops a long title
        self.drawn["bars"] = list(zip(names, values, strict=True))
        self.border_subtitle = inert(
            " · ".join(f"{short(n)} {v:.0%}" for n, v in list(imp.values.items())[:4])
        )

    def _points(self, note: str) -> None:
        plt = self.plt
        p = self.points
        if p is None or not (p.done or p.pruned):
            plt.title(note or "no finished or pruned trial has a value yet")
            self.border_subtitle = ""
            return
        if p.done:
            plt.scatter([x for x, _ in p.done], [y for _, y in p.done], marker="●", color="cyan")
        if p.pruned:
            plt.scatter([x for x, _ in p.pruned], [y for _, y in p.pruned], marker="x", color="red")
        if p.best is not None:
            plt.scatter([p.best[0]], [p.best[1]], marker="★", color="green+")
        if p.axis.labels:
            plt.xticks(list(range(len(p.axis.labels))), [short(c) for c in p.axis.labels])
        plt.title(f"{short(self.metric)} against {short(p.axis.name)}{'  ·  ' + note if note else ''}")
        plt.xlabel(short(p.axis.name))
        self.drawn["points"] = p
        self.border_subtitle = inert(
            f"cyan ●: complete {len(p.done)} · red x: pruned {len(p.pruned)} (last value) · green ★: best"
        )

    def _lines(self) -> None:
        plt = self.plt
        if not self.lines:
            plt.title("no finished or pruned trial to draw yet")
            self.border_subtitle = ""
            return
        for ln in self.lines:
            color = "green+" if ln.best else "red" if ln.state == "pruned" else "gray"
            plt.plot(ln.xs, ln.ys, marker="braille", color=color)
        ticks = [*self.axes, self.metric]
        plt.xticks(list(range(len(ticks))), [short(t) for t in ticks])
        plt.ylim(-0.02, 1.02)
        plt.title(f"{len(self.lines)} trials · each axis scaled to 0–1")  # the border names the view
        self.drawn["lines"] = self.lines
        pruned = sum(1 for ln in self.lines if ln.state == "pruned")
        self.border_subtitle = inert(
            f"green: best · grey: complete · red: pruned {pruned} (ends at its last value)"
        )
