"""The curve keys every screen with a `MetricPlot` shares: x axis, smoothing, log y.

A mixin for an `MlboxScreen`: add `CURVE_BINDINGS` to the screen's BINDINGS;
the options are kept by the screen, so a reload of the curves keeps them.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import Screen

from mlbox.tui.widgets.metric_plot import MetricPlot

CURVE_BINDINGS = [
    Binding("x", "curve_x", "X axis"),
    Binding("left_square_bracket", "curve_smooth(-1)", "Less smooth", show=False),
    Binding("right_square_bracket", "curve_smooth(1)", "Smoother"),
    Binding("l", "curve_log", "Log y"),
]


class CurveKeys(Screen[None]):
    """Actions of `CURVE_BINDINGS` on the screen's one `MetricPlot`."""

    def _plot(self) -> MetricPlot:
        return self.query_one(MetricPlot)

    def action_curve_x(self) -> None:
        plot = self._plot()
        plot.set_options(plot.options.next_x())

    def action_curve_smooth(self, by: int) -> None:
        plot = self._plot()
        plot.set_options(plot.options.step_smoothing(by))

    def action_curve_log(self) -> None:
        plot = self._plot()
        plot.set_options(plot.options.toggle_log())
