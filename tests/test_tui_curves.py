"""Curves (issue 18): x axis by step, relative or wall-clock time; EMA smoothing stepped by a key;
log y; min/max/last marks; many runs overlaid on compare with a legend that stays short; several
metrics on one chart or one chart each (g)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import SelectionList

from mlbox.services import Services
from mlbox.tui.app import MlboxApp, make_app
from mlbox.tui.screens.compare import CompareScreen
from mlbox.tui.screens.run_detail import RunDetailScreen
from mlbox.tui.views import curves
from mlbox.tui.views.curves import CurveOptions
from mlbox.tui.widgets.metric_grid import MIN_CHART_HEIGHT, MetricGrid, grid_shape
from mlbox.tui.widgets.metric_plot import LEGEND_CHARS, MetricPlot, legend_label, mark_note
from tests.test_tui import SIZE, T0, app_for, seed_store, seeded, settle

__all__ = ["seeded"]

Snap = Callable[..., bool]


def test_ema_is_debiased_and_zero_weight_is_the_values() -> None:
    assert curves.ema([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    smoothed = curves.ema([5.0] * 10, 0.9)
    assert all(math.isclose(v, 5.0) for v in smoothed)  # a constant stays itself from the first point
    noisy = [float(i % 2) for i in range(200)]
    tail = curves.ema(noisy, 0.95)[-20:]
    assert max(tail) - min(tail) < 0.1 and abs(sum(tail) / 20 - 0.5) < 0.05


def test_options_step_and_cycle() -> None:
    opts = CurveOptions()
    assert opts.step_smoothing(-1).smoothing == 0.0
    assert opts.step_smoothing(1).step_smoothing(1).smoothing == 0.8
    assert opts.step_smoothing(99).smoothing == 0.99
    assert [opts.next_x().x, opts.next_x().next_x().x, opts.next_x().next_x().next_x().x] == [
        "relative",
        "wall",
        "step",
    ]
    assert CurveOptions("relative", 0.9, True).describe() == "x relative · EMA 0.9 · log y"


def test_x_values_marks_and_log() -> None:
    assert curves.x_values([0, 5], [T0, T0 + 30], "relative") == [0.0, 30.0]
    assert curves.x_values([0, 5], [T0, T0 + 30], "relative", t0=T0 - 10) == [10.0, 40.0]
    assert curves.x_values([0, 5], [T0, T0 + 30], "step") == [0.0, 5.0]
    assert curves.x_label("relative", 4 * 3600) == ("hours since start", 3600.0)
    assert curves.x_label("relative", 600) == ("minutes since start", 60.0)
    m = curves.marks([0, 1, 2, 3], [3.0, 1.0, 4.0, 2.0])
    assert m is not None and (m.low, m.high, m.last) == ((1, 1.0), (2, 4.0), (3, 2.0))
    assert curves.marks([], []) is None
    assert curves.log_safe([0, 1, 2], [0.0, -1.0, 2.0]) == ([2], [2.0])
    assert legend_label("x" * 50) == "x" * (LEGEND_CHARS - 1) + "…"


async def test_run_detail_keys_change_the_curve(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(RunDetailScreen(2))
        await settle(pilot)
        plot = app.screen.query_one(MetricPlot)
        steps, values = plot.series["acc"]
        assert plot.drawn["acc"] == ([float(s) for s in steps], values)
        await pilot.press("right_square_bracket", "right_square_bracket")  # two notches: 0.8
        assert plot.options.smoothing == 0.8
        xs, ys = plot.drawn["acc"]
        assert ys == curves.ema(values, 0.8) and ys != values
        await pilot.press("left_square_bracket")
        assert plot.options.smoothing == 0.6
        await pilot.press("x")  # relative time: seconds since the first point (one a second)
        xs, _ = plot.drawn["acc"]
        assert plot.options.x == "relative" and xs[0] == 0.0 and xs[-1] == 49.0
        await pilot.press("x")
        assert plot.drawn["acc"][0][0] == T0 + 600  # wall clock: run 2 started at T0 + 600
        await pilot.press("l")
        assert plot.options.log_y
        # the options survive a reload of the curves (a running run's refresh)
        app.screen.load()  # type: ignore[attr-defined]
        await settle(pilot)
        assert plot.options == CurveOptions("wall", 0.6, True)


async def test_compare_overlays_many_runs_with_short_legend_labels(services: Services) -> None:
    tracking = services.tracking
    ids = []
    for i in range(8):
        run = tracking.create_run("many", f"a-rather-long-run-name-number-{i}", now=T0 + i)
        tracking.log_points(run.id, [("loss", s, T0 + i + s, 1.0 / (s + 1 + i)) for s in range(20)])
        ids.append(run.id)
    app = app_for(services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(CompareScreen(ids))
        await settle(pilot)
        plot = app.screen.query_one(MetricPlot)
        assert len(plot.drawn) == 8
        await pilot.press("x")  # relative: since the first run's first point
        assert min(xs[0] for xs, _ in plot.drawn.values()) == 0.0
        assert plot.drawn[next(iter(plot.drawn))][0][0] == 0.0
        await pilot.press("l", "right_square_bracket")
        assert plot.options == CurveOptions("relative", 0.6, True)
        assert all(len(legend_label(label)) <= LEGEND_CHARS for label in plot.drawn)


def test_grid_shape_fits_columns_and_scrolls_rows() -> None:
    assert grid_shape(1, 80, 30) == (1, 30)
    assert grid_shape(4, 80, 30) == (2, 15)  # two columns of 40, two rows of 15
    assert grid_shape(3, 50, 30) == (1, 10)  # too narrow for two columns
    assert grid_shape(12, 160, 20) == (4, MIN_CHART_HEIGHT)  # three rows of 6 are too low: it scrolls
    assert grid_shape(0, 80, 30) == (1, 30)


async def test_run_detail_one_chart_each_with_own_scale_and_marks(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(RunDetailScreen(2))
        await settle(pilot)
        screen = app.screen
        grid = screen.query_one(MetricGrid)
        assert not grid.display and screen.query_one("#plot", MetricPlot).display
        await pilot.press("g")  # one metric chosen by default: one chart each of the first few
        await settle(pilot)
        assert grid.display and not screen.query_one("#plot", MetricPlot).display
        assert list(grid.charts) == ["acc", "loss", "val_acc"]
        assert [list(p.drawn) for p in grid.plots] == [["acc"], ["loss"], ["val_acc"]]
        loss = grid.plots[1]
        steps, values = loss.series["loss"]
        assert loss.drawn["loss"] == ([float(s) for s in steps], values)
        marks = curves.marks(*loss.drawn["loss"])
        assert marks is not None and marks.low[1] == min(values) and marks.last[1] == values[-1]
        title = loss.plt._active.monitor.title
        assert title == f"loss  ·  {mark_note(marks, compact=True)}" and title.count("▼") == 1
        await pilot.press("right_square_bracket", "l")  # the curve keys act on every chart
        assert all(p.options == CurveOptions("step", 0.6, True) for p in grid.plots)
        assert "EMA 0.6" in str(grid.border_title)
        # a metric unchosen leaves its chart; back to one chart with g, the options kept
        screen.query_one("#metric-keys", SelectionList).deselect("val_acc")
        await settle(pilot)
        assert list(grid.charts) == ["acc", "loss"] and len(grid.query(MetricPlot)) == 2
        await pilot.press("g")
        plot = screen.query_one("#plot", MetricPlot)
        assert plot.display and not grid.display
        assert list(plot.drawn) == ["acc", "loss"] and plot.options == CurveOptions("step", 0.6, True)


async def test_compare_one_chart_per_metric_runs_keep_their_colour(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(CompareScreen([1, 2, 3]))
        await settle(pilot)
        screen = app.screen
        grid = screen.query_one(MetricGrid)
        assert not grid.display
        await pilot.press("g")
        await settle(pilot)
        assert grid.display and list(grid.charts) == ["acc", "loss", "val_acc"]
        labels = ["mlp-0 #1", "mlp-1 #2", "mlp-2 #3"]
        assert all(list(p.drawn) == labels for p in grid.plots)
        assert all(p.curve_colors == grid.plots[0].curve_colors for p in grid.plots)
        assert len(set(grid.plots[0].curve_colors.values())) == 3
        assert [p.legend for p in grid.plots] == [True, False, False]  # the legend once
        await pilot.press("x")
        assert all(p.options.x == "relative" for p in grid.plots)
        await pilot.press("g")  # back to the chosen metric overlaid, its curves not read again
        plot = screen.query_one("#compare-plot", MetricPlot)
        assert plot.display and list(plot.drawn) == labels and plot.options.x == "relative"


# -- snapshots ---------------------------------------------------------------------------


@pytest.fixture
def app(services: Services, utc: None) -> MlboxApp:
    seed_store(services.tracking)
    return make_app(services, home="~/.mlbox", refresh_s=3600, live_s=3600, build_ahead=False)


@pytest.mark.parametrize("size", [(160, 48), (100, 30)], ids=lambda s: f"{s[0]}x{s[1]}")
class TestCurves:
    def test_smoothed_relative_with_marks(
        self, app: MlboxApp, size: tuple[int, int], snap_compare: Snap
    ) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            pilot.app.push_screen(RunDetailScreen(2))
            await settle(pilot)
            await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket", "x")
            await pilot.pause()

        assert snap_compare(app, terminal_size=size, run_before=run_before)

    def test_compare_log_loss(self, app: MlboxApp, size: tuple[int, int], snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            pilot.app.push_screen(CompareScreen([1, 2, 3, 4, 5]))
            await settle(pilot)
            pilot.app.screen.query_one("#compare-metric").value = "loss"  # type: ignore[attr-defined]
            await settle(pilot)
            await pilot.press("l")
            await pilot.pause()

        assert snap_compare(app, terminal_size=size, run_before=run_before)

    def test_one_chart_each(self, app: MlboxApp, size: tuple[int, int], snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            pilot.app.push_screen(RunDetailScreen(2))
            await settle(pilot)
            await pilot.press("g")
            await settle(pilot)

        assert snap_compare(app, terminal_size=size, run_before=run_before)

    def test_compare_one_chart_each(self, app: MlboxApp, size: tuple[int, int], snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            pilot.app.push_screen(CompareScreen([1, 2, 3]))
            await settle(pilot)
            await pilot.press("g")
            await settle(pilot)

        assert snap_compare(app, terminal_size=size, run_before=run_before)
