"""Screens built once and shown again (issue 18: key presses within 100 ms over a big home).

The run detail opened from the runs table is the screen built for the run
before, turned to the new run: it must show the new run as a new screen
would (first tab, first curve, default curve options), never the previous
run's rows or curves, and a screen stack that still holds it gets a new one.
The help overlay is kept per screen class and list of keys.
"""

from __future__ import annotations

from textual.widgets import DataTable, SelectionList, TabbedContent

from mlbox.services import Services
from mlbox.tracking.series import Chunk
from mlbox.tui.app import MlboxApp
from mlbox.tui.screens.experiments import ExperimentsScreen
from mlbox.tui.screens.run_detail import TABLES, DetailLoaded, RunDetailScreen
from mlbox.tui.views.curves import CurveOptions
from mlbox.tui.widgets.error_dialog import ErrorDialog
from mlbox.tui.widgets.help_overlay import HelpOverlay
from mlbox.tui.widgets.metric_grid import MetricGrid
from mlbox.tui.widgets.metric_plot import MetricPlot
from tests.test_tui import SIZE, T0, app_for, seeded, settle, until

__all__ = ["seeded"]


def cells(screen: RunDetailScreen, table_id: str) -> list[list[str]]:
    table = screen.query_one(f"#{table_id}", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def log_one(services: Services, key: str) -> None:
    chunk = Chunk()
    chunk.append(0, T0 + 3000, 1.0)
    services.tracking.log_metrics(6, {key: chunk})


def detail(app: MlboxApp) -> RunDetailScreen:
    screen = app.screen
    assert isinstance(screen, RunDetailScreen), screen
    return screen


async def test_run_detail_is_turned_to_the_next_run(seeded: Services) -> None:
    app = app_for(seeded, live_s=3600)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")  # run 5
        await settle(pilot)
        first = detail(app)
        assert first.run_id == 5 and ["lr", "0.01"] in cells(first, "params")
        # leave it in another state than a new screen's: params tab, two curves, log y, one chart each
        first.query_one("#info", TabbedContent).active = "tab-params"
        first.query_one("#metric-keys", SelectionList).select("loss")
        await settle(pilot)
        await pilot.press("l", "g")
        await settle(pilot)
        assert first.charts_each and first.curve_options.log_y and first.query_one(MetricGrid).plots
        await pilot.press("escape")
        assert isinstance(app.screen, ExperimentsScreen)

        await pilot.press("down", "enter")  # run 4
        await settle(pilot)
        again = detail(app)
        assert again is first and again.run_id == 4
        assert again.title == "Run 4 · mlp-3"
        assert again.query_one("#info", TabbedContent).active == "tab-metrics"
        assert app.focused is again.query_one("ContentTabs")  # as on a new screen: the first focusable
        fresh = seeded.tracking.run_detail(4)
        assert [row[0] for row in cells(again, "metrics")] == [m.key for m in fresh.metrics]
        assert ["lr", "0.1"] in cells(again, "params") and ["lr", "0.01"] not in cells(again, "params")
        assert cells(again, "datasets")[0][3] == fresh.datasets[0].digest[:12]
        keys: SelectionList[str] = again.query_one("#metric-keys", SelectionList)
        assert keys.selected == ["acc"] and again.keys == ["acc"]
        assert again.curve_options == CurveOptions() and not again.charts_each
        plot, grid = again.query_one("#plot", MetricPlot), again.query_one(MetricGrid)
        assert plot.display and not grid.display and not grid.plots
        assert list(plot.series) == ["acc"] and plot.options == CurveOptions()
        assert plot.series["acc"][1][-1] == seeded.tracking.metric_series(4, "acc").values[-1]

        # an answer read for run 5 that lands after the turn is dropped
        stale = DetailLoaded(5, seeded.tracking.run_detail(5), ["acc"], {}, defaulted=True)
        again.post_message(stale)
        await settle(pilot)
        assert again.run_id == 4 and ["lr", "0.1"] in cells(again, "params")
        assert again.detail is not None and again.detail.run.id == 4 and list(plot.series) == ["acc"]

        # the curve keys still answer on the turned screen
        await pilot.press("g")
        await settle(pilot)
        assert again.charts_each and len(grid.plots) == 3


async def test_a_stacked_run_detail_is_not_taken_and_a_theme_restyles_it(seeded: Services) -> None:
    app = app_for(seeded, live_s=3600)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # run 6
        await settle(pilot)
        first = detail(app)
        RunDetailScreen.open(app, 2)  # while the first is on the stack: a new screen
        await settle(pilot)
        second = detail(app)
        assert second is not first and second.run_id == 2 and first.run_id == 6
        await pilot.press("escape")
        assert app.screen is first and first.run_id == 6
        await pilot.press("escape")
        background = first.query_one("#metrics", DataTable).styles.background
        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        await settle(pilot)
        RunDetailScreen.open(app, 3)
        await settle(pilot)
        assert detail(app) is first and first.run_id == 3
        restyled = first.query_one("#metrics", DataTable).styles.background
        await pilot.press("escape")
        RunDetailScreen.open(app, 2)  # the first is free again: turned, not built
        await settle(pilot)
        assert detail(app) is first
        RunDetailScreen.open(app, 1)
        await settle(pilot)
        new = detail(app)
        assert new is not first and restyled == new.query_one("#metrics", DataTable).styles.background
        assert restyled != background


async def test_the_help_overlay_is_kept_per_screen_class_and_keys(seeded: Services) -> None:
    app = app_for(seeded, live_s=3600)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        overlay = app.screen
        assert isinstance(overlay, HelpOverlay)
        table = overlay.query_one(DataTable)
        table.move_cursor(row=3)
        await pilot.press("escape")
        await pilot.press("f1")
        assert table.row_count == len(overlay.rows)
        assert app.screen is overlay
        assert (
            table.cursor_row == 0 and str(overlay.query_one("Vertical").border_title) == "Keys · Experiments"
        )
        await pilot.press("escape", "enter")  # the run detail: its own overlay
        await settle(pilot)
        await pilot.press("question_mark")
        run_help = app.screen
        assert isinstance(run_help, HelpOverlay) and run_help is not overlay
        assert "Back" in {does for _, _, does in run_help.rows}
        assert str(run_help.query_one("Vertical").border_title).startswith("Keys · Run 6 · ")
        await pilot.press("escape", "escape", "down", "enter")  # another run: the same keys, the same overlay
        await settle(pilot)
        await pilot.press("question_mark")
        assert app.screen is run_help
        assert str(run_help.query_one("Vertical").border_title).startswith("Keys · Run 5 · ")


async def test_a_run_that_cannot_be_read_shows_nothing_of_the_one_before(seeded: Services) -> None:
    app = app_for(seeded, live_s=3600)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        first = detail(app)
        assert cells(first, "params") and cells(first, "metrics")
        await pilot.press("escape")
        RunDetailScreen.open(app, 999)
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        await pilot.press("escape")
        assert app.screen is first and first.run_id == 999
        assert [table for table in TABLES if cells(first, table)] == []
        assert first.query_one("#metric-keys", SelectionList).option_count == 0
        assert first.query_one("#plot", MetricPlot).series == {}


async def test_a_kept_run_detail_stops_re_reading_its_running_run(seeded: Services) -> None:
    app = app_for(seeded, live_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # run 6, still running: re-read every 100 ms while shown
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        first = detail(app)
        assert first.run_id == 6 and first.detail is not None and first.detail.run.status == "running"
        await pilot.press("escape")
        log_one(seeded, "extra")
        await pilot.pause(0.4)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert first.detail is not None and "extra" not in [m.key for m in first.detail.metrics]
        await pilot.press("enter")  # shown again: read again, and re-read while it runs
        assert detail(app) is first and "extra" in [m.key for m in first.detail.metrics]
        log_one(seeded, "later")
        await until(
            pilot, lambda: "later" in [m.key for m in first.detail.metrics] if first.detail else False
        )
        await pilot.press("escape")
