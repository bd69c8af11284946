"""Screens built once and shown again (issue 18: key presses within 100 ms over a big home).

The run detail opened from the runs table is the screen built for the run
before, turned to the new run: it must show the new run as a new screen
would (first tab, first curve, default curve options), never the previous
run's rows or curves, and a screen stack that still holds it gets a new one.
The help overlay is kept per screen class and list of keys. The sort picker
and the column chooser are kept and turned to the question of now: shown again,
each must read as a new one built for the same arguments would (options,
marks, checks, highlight), and answer as one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.containers import Vertical
from textual.pilot import Pilot
from textual.widgets import DataTable, OptionList, SelectionList, TabbedContent

from mlbox.services import Services
from mlbox.tracking.series import Chunk
from mlbox.tui.app import MlboxApp
from mlbox.tui.screens.experiments import ExperimentsScreen
from mlbox.tui.screens.run_detail import REUSED, TABLES, DetailLoaded, RunDetailScreen
from mlbox.tui.views.curves import CurveOptions
from mlbox.tui.widgets import column_chooser, sort_picker
from mlbox.tui.widgets.column_chooser import PIN, ColumnChooser
from mlbox.tui.widgets.error_dialog import ErrorDialog
from mlbox.tui.widgets.experiments_list import ExperimentsList
from mlbox.tui.widgets.help_overlay import HelpOverlay
from mlbox.tui.widgets.metric_grid import MetricGrid
from mlbox.tui.widgets.metric_plot import MetricPlot
from mlbox.tui.widgets.sort_picker import SortPicker
from tests.test_tui import SIZE, T0, app_for, seeded, settle, table_ids, until

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


def drawn(app: MlboxApp) -> list[list[tuple[str, str]]]:
    """The screen as drawn: each line's segments, their text and style (less click metadata)."""
    strips = app.screen._compositor.render_strips()
    return [
        [(s.text, str(s.style.clear_meta_and_links() if s.style else "")) for s in strip] for strip in strips
    ]


async def test_the_first_run_opened_is_shown_on_the_prebuilt_screen_as_on_a_new_one(seeded: Services) -> None:
    """The experiments screen builds the run detail off screen a second after its first rows
    (`RunDetailScreen.prebuild`) and draws the run under the cursor on it: it takes nothing from
    the runs table, and the first enter (on another run) shows it drawn as a screen built then
    would be (its own CSS, not only the app's; nothing left of the run drawn ahead)."""
    app = app_for(seeded, live_s=3600)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ExperimentsScreen)
        await until(pilot, lambda: app.is_screen_installed(REUSED))
        prebuilt = app.get_screen(REUSED)
        assert isinstance(prebuilt, RunDetailScreen)
        await until(pilot, lambda: prebuilt.detail is not None)
        assert prebuilt.run_id == 6 and prebuilt.away and prebuilt.query_one(MetricPlot).drawn
        assert on_top(app, screen) and app.focused is screen.table
        await pilot.press("down", "enter")  # run 5, ended: drawn the same a moment later
        await settle(pilot)
        assert on_top(app, prebuilt) and prebuilt.run_id == 5
        assert app.focused is prebuilt.query_one("ContentTabs")
        on_prebuilt = drawn(app)
        await pilot.press("l")  # its keys redraw it
        await settle(pilot)
        assert prebuilt.query_one(MetricPlot).options.log_y and drawn(app) != on_prebuilt
    app = app_for(seeded, live_s=3600)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")  # before the prebuild: built by `open`
        await settle(pilot)
        assert detail(app) is not prebuilt and detail(app).run_id == 5
        assert drawn(app) == on_prebuilt


@pytest.mark.parametrize("turns", [0, 1, 3])
async def test_an_app_closing_while_the_run_detail_is_prebuilt_closes_cleanly(
    seeded: Services, turns: int
) -> None:
    """A quit (here: the test's end) a few event-loop turns after the prebuild began: the
    screen still mounting is mounted before Textual shuts down (`MlboxApp._shutdown`), else its
    widgets' mount handlers find no children and the app ends with an error."""
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        RunDetailScreen.prebuild(app, 6)
        for _ in range(turns):
            await asyncio.sleep(0)
    assert app.return_code in (0, None)


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


def on_top(app: MlboxApp, dialog: object) -> bool:
    """``dialog`` is the screen shown (a function: ``app.screen is dialog`` would narrow its type)."""
    return app.screen is dialog


def picker_state(picker: SortPicker) -> tuple[list[str], list[str], int | None]:
    options = picker.query_one(OptionList)
    prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
    return [c.key for c in picker.columns], prompts, options.highlighted


def chooser_state(chooser: ColumnChooser) -> tuple[list[str], list[str], list[str], int | None]:
    options: SelectionList[str] = chooser.query_one(SelectionList)
    prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
    return [c.key for c in chooser.columns], prompts, sorted(options.selected), options.highlighted


async def fresh_state(pilot: Pilot[None], key: str, name: str, state: Any) -> object:
    """The state of a dialog built anew (the kept one uninstalled) for what ``key`` asks now."""
    app = pilot.app
    kept = app.get_screen(name)
    app.uninstall_screen(name)
    await pilot.press(key)
    await pilot.pause()
    fresh = app.screen
    assert fresh is not kept and type(fresh) is type(kept)
    answer = state(fresh)
    await pilot.press("escape")
    await settle(pilot)
    app.uninstall_screen(name)
    app.install_screen(kept, name)  # the kept one again, for the next press
    return answer


async def choose(pilot: Pilot[None], index: int) -> None:
    await pilot.press("e")
    pilot.app.screen.query_one(ExperimentsList).highlighted = index
    await pilot.press("enter")
    await settle(pilot)


async def test_the_sort_picker_is_turned_to_the_sort_of_now(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ExperimentsScreen)
        await pilot.press("s")
        picker = app.screen
        assert isinstance(picker, SortPicker) and picker_state(picker)[2] == 0  # id, the first
        keys = [c.key for c in picker.columns]
        picker.query_one(OptionList).highlighted = keys.index("metric:loss")
        await pilot.press("a")  # loss, low to high
        await settle(pilot)
        assert (screen.sort_key, screen.sort_desc) == ("metric:loss", False)
        losses = [screen.table.run_by_id[i].metrics["loss"] for i in table_ids(app)]
        assert losses == sorted(losses)  # type: ignore[type-var]

        await pilot.press("s")
        assert on_top(app, picker)
        shown = picker_state(picker)
        assert shown[2] == keys.index("metric:loss")
        assert [p for p in shown[1] if "now" in p] == ["loss  metric  ▲ now"]
        picker.query_one(OptionList).highlighted = 0  # moved, then cancelled: nothing changes
        await pilot.press("escape")
        await settle(pilot)
        assert (screen.sort_key, screen.sort_desc) == ("metric:loss", False)
        await pilot.press("s")
        assert on_top(app, picker) and picker_state(picker) == shown
        await pilot.press("enter")  # the sort column again: flipped
        await settle(pilot)
        assert (screen.sort_key, screen.sort_desc) == ("metric:loss", True)
        assert [screen.table.run_by_id[i].metrics["loss"] for i in table_ids(app)] == losses[::-1]
        await pilot.press("s")
        assert on_top(app, picker)
        flipped = picker_state(picker)
        assert [p for p in flipped[1] if "now" in p] == ["loss  metric  ▼ now"]
        await pilot.press("escape")
        assert flipped == await fresh_state(pilot, "s", sort_picker.KEPT, picker_state)

        await choose(pilot, 2)  # digits: its own columns (no experiment column), its own sort (none)
        await pilot.press("s")
        assert on_top(app, picker)
        turned = picker_state(picker)
        assert "experiment" not in turned[0] and turned[2] == 0 and not [p for p in turned[1] if "now" in p]
        await pilot.press("d")  # id, high to low
        await settle(pilot)
        assert (screen.sort_key, screen.sort_desc) == ("id", True) and table_ids(app) == [4, 3, 2, 1]
        await pilot.press("s")
        assert on_top(app, picker)
        await pilot.press("escape")
        assert picker_state(picker) == await fresh_state(pilot, "s", sort_picker.KEPT, picker_state)


async def test_the_column_chooser_is_turned_to_the_columns_of_now(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ExperimentsScreen)
        await choose(pilot, 2)  # digits
        await pilot.press("v")
        chooser = app.screen
        assert isinstance(chooser, ColumnChooser)
        keys = [c.key for c in chooser.columns]
        options: SelectionList[str] = chooser.query_one(SelectionList)
        options.highlighted = keys.index("started")
        await pilot.press("space")  # hide started
        options.highlighted = keys.index("param:lr")
        await pilot.press("p")  # pin lr
        await pilot.press("escape")
        await settle(pilot)
        assert [c.key for c in screen.table.shown_columns][:2] == ["mark", "param:lr"]
        assert "started" not in [c.key for c in screen.table.shown_columns]

        await pilot.press("v")
        assert on_top(app, chooser)
        state = chooser_state(chooser)
        assert "started" not in state[2] and "param:lr" in state[2] and state[3] == 0
        assert [p for p in state[1] if PIN in p] == [f"lr  param  {PIN}"]
        await pilot.press("escape")
        await settle(pilot)
        assert state == await fresh_state(pilot, "v", column_chooser.KEPT, chooser_state)

        # the same columns in the same order, checks and pins changed behind its back
        screen.action_reset_view()
        await settle(pilot)
        await pilot.press("v")
        keys = [c.key for c in chooser.columns]
        options.highlighted = len(keys) - 1
        await pilot.press("space")  # hide the last column: the order stays
        options.highlighted = 0
        await pilot.press("p")  # pin the first: so does it
        await pilot.press("escape")
        await settle(pilot)
        assert screen.table.fixed_columns == 2 and keys[-1] not in screen.shown  # type: ignore[operator]
        screen.action_reset_view()  # from the palette
        await settle(pilot)
        await pilot.press("v")
        assert on_top(app, chooser) and [c.key for c in chooser.columns] == keys
        reset = chooser_state(chooser)
        assert reset[2] == sorted(keys) and not [p for p in reset[1] if PIN in p]
        await pilot.press("escape")
        await settle(pilot)
        assert reset == await fresh_state(pilot, "v", column_chooser.KEPT, chooser_state)

        await choose(pilot, 0)  # all experiments: another list of columns
        background = chooser.query_one(Vertical).styles.background
        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        await settle(pilot)
        await pilot.press("v")
        assert on_top(app, chooser)
        everything = chooser_state(chooser)
        assert "experiment" in everything[0] and "experiment" not in state[0]
        assert chooser.query_one(Vertical).styles.background != background  # restyled for the theme
        await pilot.press("escape")
        await settle(pilot)
        assert {c.key for c in screen.table.shown_columns} == {"mark", *everything[2]}
        assert everything == await fresh_state(pilot, "v", column_chooser.KEPT, chooser_state)


async def test_the_runs_table_keeps_its_drawn_rows_across_a_focus_change_not_a_theme(
    seeded: Services,
) -> None:
    """Leaving the screen and coming back (the table loses and takes the focus) draws the rows
    from the table's caches; a theme change draws them anew, as a table never drawn would be."""
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ExperimentsScreen)
        table = screen.table
        before = drawn(app)
        keys = list(table._body_lines.keys())  # (a Textual LRUCache: no iteration of its own)
        cached = {key: table._body_lines[key] for key in keys}
        assert cached
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("1")
        await settle(pilot)
        assert on_top(app, screen) and app.focused is table
        assert drawn(app) == before
        assert all(table._body_lines.get(key) is strip for key, strip in cached.items())

        def fresh() -> list[list[tuple[str, str]]]:
            table._body_lines.clear()
            table._body_cache.clear()
            table._component_rich_styles.clear()
            table._styles_cache.clear()
            table.refresh()
            return drawn(app)

        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        await settle(pilot)
        themed = drawn(app)
        assert themed != before and themed == fresh()
