"""The experiments sidebar, the column chooser, saved views and the help overlay (issue 18).

Pilot tests over the deterministic store of `tests.test_tui.seed_store` (two
experiments: digits with runs 1-4, baseline with runs 5-6), then snapshots of
each new view at 160x48 and 100x30.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, SelectionList, Static

from mlbox.services import Services
from mlbox.tui.app import MlboxApp, make_app
from mlbox.tui.bench import seed_runs
from mlbox.tui.screens.experiments import ExperimentsScreen
from mlbox.tui.views import saved_views
from mlbox.tui.views.saved_views import View
from mlbox.tui.widgets.column_chooser import ColumnChooser
from mlbox.tui.widgets.experiments_list import ExperimentsList
from mlbox.tui.widgets.help_overlay import HelpOverlay
from mlbox.tui.widgets.runs_table import RunsTable
from mlbox.tui.widgets.sort_picker import SortPicker
from tests.test_tui import SIZE, app_for, seed_store, seeded, settle, table_ids

__all__ = ["seeded"]  # the fixture, imported for its use here

Snap = Callable[..., bool]
SIZES = [(160, 48), (100, 30)]


def experiments_screen(app: MlboxApp) -> ExperimentsScreen:
    screen = app.screen
    assert isinstance(screen, ExperimentsScreen)
    return screen


def column_keys(app: MlboxApp) -> list[str]:
    return [c.key for c in app.screen.query_one(RunsTable).shown_columns]


async def choose(pilot: Pilot[None], experiment: str) -> None:
    """Choose ``experiment`` in the sidebar with the keyboard."""
    await pilot.press("e")
    sidebar = pilot.app.screen.query_one(ExperimentsList)
    sidebar.highlighted = sidebar.names.index(experiment) + 1
    await pilot.press("enter")
    await settle(pilot)
    # DataTable measures new rows when idle: a screenshot before that draws label-wide columns
    table = pilot.app.screen.query_one(RunsTable)
    while table._require_update_dimensions or table._new_rows:
        await pilot.pause(0.02)


async def test_the_sidebar_lists_experiments_with_run_counts_and_narrows_the_table(seeded: Services) -> None:
    seeded.tracking.log_params(5, {"C": 1.0})  # a param only baseline has
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        sidebar = app.screen.query_one(ExperimentsList)
        assert sidebar.names == ["baseline", "digits"]
        lines = [str(sidebar.get_option_at_index(i).prompt).split() for i in range(sidebar.option_count)]
        assert lines == [["all", "experiments", "6"], ["baseline", "2"], ["digits", "4"]]
        assert "experiment" in column_keys(app)
        await choose(pilot, "baseline")
        assert table_ids(app) == [6, 5]
        keys = column_keys(app)
        assert "experiment" not in keys  # one experiment: its name needs no column
        # every param and metric of baseline, C included; none of digits' only
        assert [k for k in keys if ":" in k] == [
            "metric:acc",
            "metric:loss",
            "metric:val_acc",
            "param:C",
            "param:epochs",
            "param:hidden",
            "param:lr",
        ]
        assert app.focused is app.screen.query_one(RunsTable)
        summary = str(app.screen.query_one("#summary", Static).render())
        assert "experiment baseline" in summary and "2 of 2 runs" in summary
        # a filter applies within the experiment
        await pilot.press("slash", *"params.lr = '0.001'", "enter")
        await settle(pilot)
        assert table_ids(app) == [6]
        await choose(pilot, "digits")
        assert table_ids(app) == [4, 3, 2, 1]  # digits' own (empty) filter
        assert "param:C" not in column_keys(app)
        await pilot.press("e")
        app.screen.query_one(ExperimentsList).highlighted = 0
        await pilot.press("enter")
        await settle(pilot)
        assert table_ids(app) == [6, 5, 4, 3, 2, 1]


async def test_the_sidebar_follows_new_experiments(seeded: Services) -> None:
    app = app_for(seeded, refresh_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        seeded.tracking.create_run("zeta", "first")
        sidebar = app.screen.query_one(ExperimentsList)
        for _ in range(100):
            if sidebar.names == ["baseline", "digits", "zeta"]:
                break
            await pilot.pause(0.05)
        assert sidebar.names == ["baseline", "digits", "zeta"]
        assert str(sidebar.get_option_at_index(0).prompt).split()[-1] == "7"


async def test_sort_picker_offers_columns_not_on_screen(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = experiments_screen(app)
        screen.shown = ["id", "name"]  # a view that shows no metric
        screen.request("replace", "")
        await settle(pilot)
        assert "metric:loss" not in column_keys(app)
        await pilot.press("s")
        picker = app.screen
        assert isinstance(picker, SortPicker)
        keys = [c.key for c in picker.columns]
        assert "metric:loss" in keys and "mark" not in keys
        picker.query_one("OptionList").highlighted = keys.index("metric:loss")  # type: ignore[attr-defined]
        await pilot.press("a")
        await settle(pilot)
        assert column_keys(app)[-1] == "metric:loss"  # the sort column shows, though hidden
        losses = [app.screen.query_one(RunsTable).run_by_id[i].metrics["loss"] for i in table_ids(app)]
        assert losses == sorted(losses)  # type: ignore[type-var]
        await pilot.press("s", "escape")  # cancel: nothing changes
        await settle(pilot)
        assert (screen.sort_key, screen.sort_desc) == ("metric:loss", False)


async def test_column_chooser_hides_and_pins_and_the_view_is_saved(seeded: Services) -> None:
    app = app_for(seeded)
    path = saved_views.path_in(seeded.home.root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await choose(pilot, "digits")
        assert not path.exists()  # choosing writes nothing
        await pilot.press("v")
        chooser = app.screen
        assert isinstance(chooser, ColumnChooser)
        options = chooser.query_one(SelectionList)
        keys = [c.key for c in chooser.columns]
        options.highlighted = keys.index("started")
        await pilot.press("space")  # hide started
        options.highlighted = keys.index("metric:val_acc")
        await pilot.press("p")  # pin val_acc
        options.highlighted = keys.index("param:lr")
        await pilot.press("p")  # and lr
        await pilot.press("escape")
        await settle(pilot)
        shown = column_keys(app)
        assert shown[:3] == ["mark", "metric:val_acc", "param:lr"]
        assert "started" not in shown and "name" in shown
        table = app.screen.query_one(RunsTable)
        assert table.fixed_columns == 3
        assert str(table.get_row("2")[1]) == "0.8778" and str(table.get_row("2")[2]) == "0.01"
        # sorted by a pinned column, then saved for digits only
        experiments_screen(app).sort_on("metric:val_acc", False)
        await settle(pilot)
        assert table_ids(app) == [4, 3, 2, 1]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        saved = json.loads(path.read_text())["views"]
        assert set(saved) == {"digits"}
        assert saved["digits"]["pinned"] == ["metric:val_acc", "param:lr"]
        assert saved["digits"]["sort_key"] == "metric:val_acc" and saved["digits"]["sort_desc"] is False
        await choose(pilot, "baseline")  # its own default view
        assert "started" in column_keys(app) and app.screen.query_one(RunsTable).fixed_columns == 1
    # a new TUI restores digits' view when digits is chosen
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await choose(pilot, "digits")
        assert column_keys(app)[:3] == ["mark", "metric:val_acc", "param:lr"]
        assert "started" not in column_keys(app)
        assert table_ids(app) == [4, 3, 2, 1]
        await pilot.press("ctrl+p")  # reset from the palette
        await pilot.pause()
        await pilot.press(*"Reset view")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert "started" in column_keys(app) and table_ids(app) == [4, 3, 2, 1]
        assert json.loads(path.read_text())["views"]["digits"]["pinned"] == []


async def test_a_saved_view_sorted_by_a_fixed_column_opens_sorted(seeded: Services) -> None:
    """The all-runs view is restored before the first page names its columns: a sort by id
    (a fixed column) must still read as id, not as a param with an empty name (an error dialog)."""
    saved_views.save(
        saved_views.path_in(seeded.home.root), saved_views.ALL, View(sort_key="id", sort_desc=False)
    )
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ExperimentsScreen)
        assert table_ids(app) == [1, 2, 3, 4, 5, 6]


async def test_columns_off_screen_are_drawn_once_scrolled_to(seeded: Services) -> None:
    """The runs table draws the cells of columns outside the viewport as blanks (they are cropped
    away); scrolled sideways, those columns show their values."""
    app = app_for(seeded)
    async with app.run_test(size=(70, 30)) as pilot:
        await choose(pilot, "digits")
        table = app.screen.query_one(RunsTable)
        keys = [c.key for c in table.shown_columns]
        first, last = table.visible_span()
        assert last < len(keys) - 1  # the last columns are off-screen at 70 columns
        hidden = keys[-1]
        value = str(table.get_row("2")[keys.index(hidden)]).strip()
        row = table.run_order.index(2) + table.header_height

        def line() -> str:
            return table.render_line(row - int(table.scroll_y)).text

        assert value not in line()
        table.scroll_to(x=table.max_scroll_x, animate=False)
        await pilot.pause()
        assert table.visible_span()[1] == len(keys) - 1
        assert value in line()
        table.scroll_to(x=0, animate=False)
        await pilot.pause()
        assert table.visible_span() == (first, last) and value not in line()


def visible_rows(table: RunsTable, *keys: str) -> list[tuple[str, ...]]:
    """The cells of columns ``keys`` in each body row on screen, read from the drawn lines."""
    columns = table.ordered_columns
    widths = [c.get_render_width(table) for c in columns]
    spans = {c.key.value: (sum(widths[:i]), sum(widths[: i + 1])) for i, c in enumerate(columns)}
    shown = min(table.row_count - int(table.scroll_y), table.size.height - table.header_height)
    rows = []
    for y in range(table.header_height, table.header_height + shown):
        text = table.render_line(y).text
        rows.append(tuple(text[spans[k][0] : spans[k][1]].strip() for k in keys))
    return rows


async def test_filter_and_sort_over_2000_runs_draw_the_right_rows(services: Services) -> None:
    """2,000 runs (`seed_runs`: run i+1 has layers 1 + i % 5 and val_acc (i % 1000) / 1000):
    a filter, a sort picked with the keyboard, its reverse and paging down each draw the rows
    the search answers, in order, with their own values."""
    seed_runs(services.tracking, 2000)
    app = app_for(services)
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        await pilot.press("slash")
        app.screen.query_one("#filter", Input).value = "params.layers = '3'"
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("s")
        picker = app.screen
        assert isinstance(picker, SortPicker)
        keys = [c.key for c in picker.columns]
        picker.query_one("OptionList").highlighted = keys.index("metric:val_acc")  # type: ignore[attr-defined]
        await pilot.press("a")
        await settle(pilot)
        assert "100 of 400 runs" in str(app.screen.query_one("#summary", Static).render())
        ascending = sorted((i % 1000) / 1000 for i in range(2000) if i % 5 == 2)

        def check(expected: list[float]) -> None:
            rows = visible_rows(table, "id", "metric:val_acc", "param:layers")
            first = int(table.scroll_y)
            assert len(rows) == table.size.height - table.header_height  # a full screen
            assert [float(v) for _, v, _ in rows] == expected[first : first + len(rows)]
            for run_id, value, layers in rows:  # each row's cells are its own run's
                i = int(run_id) - 1
                assert (float(value), layers) == ((i % 1000) / 1000, "3"), (run_id, value, layers)
            assert [r[0] for r in rows] == [str(i) for i in table.run_order[first : first + len(rows)]]

        check(ascending)
        await pilot.press("S")
        await settle(pilot)
        check(ascending[::-1])
        for _ in range(4):  # past the first page: the next ones load, drawn in order
            await pilot.press("pagedown")
            await settle(pilot)
        assert len(table.run_order) > 100 and table.scroll_y > 60
        check(ascending[::-1])


def test_views_file_damaged_or_missing_reads_as_none(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    path = saved_views.path_in(tmp_path)
    assert saved_views.load(path) == {}
    path.parent.mkdir()
    path.write_text("{not json")
    assert saved_views.load(path) == {}
    saved_views.save(path, "a", View(pinned=["param:lr"]))  # replaces the damaged file
    saved_views.save(path, "b", View(sort_key="id", sort_desc=False))
    views = saved_views.load(path)
    assert views["a"].pinned == ["param:lr"] and views["b"] == View(sort_key="id", sort_desc=False)
    assert [p.name for p in path.parent.iterdir()] == ["views.json"]  # no temporary left


async def test_help_overlay_lists_the_screens_keys(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        overlay = app.screen
        assert isinstance(overlay, HelpOverlay)
        does = {row[2]: row[1] for row in overlay.rows}
        assert does["Sort"] == "s" and does["Columns"] == "v" and does["Filter"] == "/"
        assert does["Help"] == "? / f1" and does["Quit"] == "^q / q"
        table = overlay.query_one(DataTable)
        assert table.row_count == len(overlay.rows)
        await pilot.press("escape")
        assert isinstance(app.screen, ExperimentsScreen)
        await pilot.press("1", "enter")  # run detail: its own keys
        await settle(pilot)
        await pilot.press("f1")
        detail_help = app.screen
        assert isinstance(detail_help, HelpOverlay)
        assert "Sort" not in {row[2] for row in detail_help.rows}
        assert "Back" in {row[2] for row in detail_help.rows}
        await pilot.press("question_mark")
        assert not isinstance(app.screen, HelpOverlay)
        # the palette keeps its entries and offers the overlay
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert "Keys of this screen" in titles


# -- snapshots ---------------------------------------------------------------------------


@pytest.fixture
def app(services: Services, utc: None) -> MlboxApp:
    seed_store(services.tracking)
    return make_app(services, home="~/.mlbox", refresh_s=3600, live_s=3600, build_ahead=False)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
class TestExperimentsViews:
    def test_one_experiment(self, app: MlboxApp, size: tuple[int, int], snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            await choose(pilot, "digits")

        assert snap_compare(app, terminal_size=size, run_before=run_before)

    def test_column_chooser(self, app: MlboxApp, size: tuple[int, int], snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            await choose(pilot, "digits")
            await pilot.press("v")
            await pilot.press("down", "down", "space", "down", "down", "down", "down", "p")
            await pilot.pause()

        assert snap_compare(app, terminal_size=size, run_before=run_before)

    def test_pinned_and_sorted(self, app: MlboxApp, size: tuple[int, int], snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            await choose(pilot, "digits")
            screen = experiments_screen(pilot.app)  # type: ignore[arg-type]
            screen.pinned = ["param:lr", "metric:val_acc"]
            screen.sort_on("metric:val_acc", False)
            await settle(pilot)

        assert snap_compare(app, terminal_size=size, run_before=run_before)

    def test_sort_picker(self, app: MlboxApp, size: tuple[int, int], snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            await pilot.press("s", "down", "down")
            await pilot.pause()

        assert snap_compare(app, terminal_size=size, run_before=run_before)

    def test_help_overlay(self, app: MlboxApp, size: tuple[int, int], snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            await pilot.press("question_mark")
            await pilot.pause()

        assert snap_compare(app, terminal_size=size, run_before=run_before)
