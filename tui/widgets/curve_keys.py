"""The curve keys every screen with metric charts shares: x axis, smoothing, log y, one chart each.

A mixin for an `MlboxScreen`: add `CURVE_BINDINGS` to the screen's BINDINGS.
The options are the screen's (`curve_options`), applied to every chart on
it, so a reload of the curves — or a chart mounted later — keeps them. The
layout key flips `charts_each` (the metrics overlaid on one chart, or one
`MetricGrid` chart each) and asks the screen to draw its curves again
(`show_curves`).
"""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import Screen

from mlbox.tui.views.curves import CurveOptions
from mlbox.tui.widgets.metric_grid import MetricGrid
from mlbox.tui.widgets.metric_plot import MetricPlot

CURVE_BINDINGS = [
    Binding("x", "curve_x", "X axis"),
    Binding("left_square_bracket", "curve_smooth(-1)", "Less smooth", show=False),
    Binding("right_square_bracket", "curve_smooth(1)", "Smoother"),
    Binding("l", "curve_log", "Log y"),
    Binding("g", "curve_layout", "One chart each"),
]


class CurveKeys(Screen[None]):
    """Actions of `CURVE_BINDINGS` on the screen's charts."""

    curve_options = CurveOptions()
    """The x axis, smoothing and log y of every chart on the screen (set per screen when changed)."""
    charts_each = False
    """One chart per metric (a `MetricGrid`) instead of the metrics overlaid on one."""

    def show_curves(self) -> None:
        """Draw the curves again in the layout `charts_each` names (the screen knows its data)."""

    def _set_curve_options(self, options: CurveOptions) -> None:
        self.curve_options = options
        for plot in self.query(MetricPlot):
            if not isinstance(plot.parent, MetricGrid):
                plot.set_options(options)
        for grid in self.query(MetricGrid):
            grid.set_options(options)

    def action_curve_x(self) -> None:
        self._set_curve_options(self.curve_options.next_x())

    def action_curve_smooth(self, by: int) -> None:
        self._set_curve_options(self.curve_options.step_smoothing(by))

    def action_curve_log(self) -> None:
        self._set_curve_options(self.curve_options.toggle_log())

    def action_curve_layout(self) -> None:
        self.charts_each = not self.charts_each
        self.show_curves()
