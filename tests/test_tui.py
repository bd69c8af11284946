"""Pilot tests of the TUI over a real store: the experiments screen, run detail, compare,
live curves, the error dialog and the embedded appliance.

Every test seeds a fresh home through the tracking service, drives the app
with keys, and waits for the workers (never a fixed sleep) before asserting.
"""

from __future__ import annotations

import asyncio
import math
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Select, SelectionList, Static

from mlbox.appliance import Appliance
from mlbox.services import Services
from mlbox.store.errors import InvalidInput
from mlbox.tracking import search
from mlbox.tracking.provenance import CodeVersion
from mlbox.tracking.series import Chunk
from mlbox.tracking.service import TrackingService
from mlbox.tui.app import MlboxApp, make_app
from mlbox.tui.bench import seed_runs, time_open_runs_table
from mlbox.tui.navigation import SECTIONS
from mlbox.tui.screens.compare import CompareScreen
from mlbox.tui.screens.experiments import ExperimentsScreen
from mlbox.tui.screens.run_detail import RunDetailScreen
from mlbox.tui.views import format as fmt
from mlbox.tui.widgets.error_dialog import ErrorDialog
from mlbox.tui.widgets.metric_plot import MetricPlot
from mlbox.tui.widgets.nav_bar import SHORT, NavBar
from mlbox.tui.widgets.runs_table import RunsTable
from mlbox.tui.widgets.sort_picker import SortPicker
from mlbox.tui.widgets.status_bar import StatusBar

T0 = 1_700_000_000.0
SIZE = (120, 36)
LRS = (0.1, 0.01, 0.001)


def seed_store(tracking: TrackingService) -> None:
    """Six runs in two experiments with fixed times: five ended, the last still running.

    Run ``i`` (id ``i + 1``) logs 50 steps of loss, acc and val_acc; val_acc
    ends higher for earlier runs. Times, names and ids are fixed, so snapshots
    over this store are stable.
    """
    for i in range(6):
        start = T0 + i * 600
        run = tracking.create_run(
            "digits" if i < 4 else "baseline",
            f"mlp-{i}",
            tags={"model": "mlp" if i < 4 else "logreg"},
            host="lab",
            pid=0,
            code=CodeVersion("0123456789abcdef0123456789abcdef01234567", i == 1, "", None),
            environment={"python": "3.11.7", "cpus": 2, "gpus": []},
            now=start,
        )
        tracking.log_params(run.id, {"lr": LRS[i % 3], "hidden": 64 * (1 + i % 2), "epochs": 50})
        series = {"loss": Chunk(), "acc": Chunk(), "val_acc": Chunk()}
        for step in range(50):
            ts = start + step
            series["loss"].append(step, ts, 2.0 * math.exp(-step / (10 + i)) + 0.05)
            series["acc"].append(step, ts, 0.95 - 0.5 * math.exp(-step / (6 + i)))
            series["val_acc"].append(step, ts, 0.9 - 0.02 * i - 0.5 * math.exp(-step / (8 + i)))
        tracking.log_metrics(run.id, series, now=start + 90)
        tracking.log_artifact_bytes(run.id, "model/weights.txt", f"weights of run {i}\n".encode())
        tracking.log_dataset(
            run.id, name="digits", digest=f"{i:02d}" + "ab" * 31, source="sklearn", rows=1797, schema={}
        )
        if i < 5:
            tracking.end_run(run.id, "failed" if i == 2 else "finished", now=start + 95 + i)


@pytest.fixture
def seeded(services: Services) -> Services:
    seed_store(services.tracking)
    return services


def app_for(services: Services, **kwargs: object) -> MlboxApp:
    """The app as `mlbox` makes it, without building the sections ahead (`MlboxApp.build_ahead`,
    ~1 s of CPU in idle moments: its own tests turn it on)."""
    options: dict[str, object] = {"home": "~/.mlbox", "refresh_s": 3600.0, "build_ahead": False}
    options.update(kwargs)
    return make_app(services, **options)  # type: ignore[arg-type]


async def settle(pilot: Pilot[None], rounds: int = 4) -> None:
    """Let workers finish and their answers land; answers may start more workers."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def until(
    pilot: Pilot[None], condition: Callable[[], bool], state: Callable[[], object] = lambda: None
) -> None:
    """Pump the app until ``condition()`` holds (for timers and other processes); ``state`` explains a timeout."""
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in 30 s; state: {state()!r}")
        await pilot.pause(0.05)
        await pilot.app.workers.wait_for_complete()


def table_ids(app: MlboxApp) -> list[int]:
    return list(app.screen.query_one(RunsTable).run_order)


def status_text(app: MlboxApp) -> str:
    return str(app.screen.query_one(StatusBar).render())


# -- the experiments screen ---------------------------------------------------------------


async def test_table_shows_runs_newest_first(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ExperimentsScreen)
        table = app.screen.query_one(RunsTable)
        assert table_ids(app) == [6, 5, 4, 3, 2, 1]
        assert table.row_count == 6
        keys = [c.key for c in table.shown_columns]
        assert keys[:7] == ["mark", "id", "experiment", "name", "status", "started", "duration"]
        assert {"metric:acc", "metric:loss", "metric:val_acc", "param:lr", "param:hidden"} <= set(keys)
        row = table.get_row("3")
        assert "failed" in str(row[keys.index("status")])
        assert str(row[keys.index("param:lr")]) == "0.001"
        assert "6 of 6 runs" in str(app.screen.query_one("#summary", Static).render())
        text = status_text(app)
        assert "no appliance" in text and "~/.mlbox" in text
        assert "2 experiments · 6 runs · 1 running" in text


async def test_filter_narrows_the_runs(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        assert app.focused is app.screen.query_one("#filter", Input)
        await pilot.press(*"params.lr = '0.1'", "enter")
        await settle(pilot)
        assert table_ids(app) == [4, 1]
        # val_acc ends near 0.9 - 0.02 i: runs 0 and 1 pass; lr 0.1 is runs 0 and 3
        await pilot.press("slash")
        app.screen.query_one("#filter", Input).value = "metrics.val_acc > 0.87 and params.lr = '0.1'"
        await pilot.press("enter")
        await settle(pilot)
        assert table_ids(app) == [1]
        assert "1 of 1 runs" in str(app.screen.query_one("#summary", Static).render())
        await pilot.press("slash")
        app.screen.query_one("#filter", Input).value = "experiment = 'baseline'"
        await pilot.press("enter")
        await settle(pilot)
        assert table_ids(app) == [6, 5]


async def test_bad_filter_shows_the_error_inline_and_keeps_the_table(seeded: Services) -> None:
    app = app_for(seeded)
    bad = "metrics.val_acc > 0.9 and"
    with pytest.raises(InvalidInput) as expected:
        search.parse(bad)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        app.screen.query_one("#filter", Input).value = bad
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ExperimentsScreen)  # no dialog: the error sits under the input
        error = screen.query_one("#filter-error", Static)
        assert str(error.render()) == expected.value.message
        assert error.display and screen.has_class("filter-invalid")
        assert table_ids(app) == [6, 5, 4, 3, 2, 1]
        # a good filter clears the error
        await pilot.press("slash")
        app.screen.query_one("#filter", Input).value = "status = 'failed'"
        await pilot.press("enter")
        await settle(pilot)
        assert table_ids(app) == [3]
        assert not screen.has_class("filter-invalid")


async def test_sort_picker_sorts_by_a_chosen_column_either_way(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ExperimentsScreen)
        await pilot.press("s")  # the picker, on the first sortable column: id
        await pilot.pause()
        assert isinstance(app.screen, SortPicker)
        await pilot.press("enter")  # its natural direction: high to low
        await settle(pilot)
        assert (screen.sort_key, screen.sort_desc) == ("id", True)
        assert table_ids(app) == [6, 5, 4, 3, 2, 1]
        await pilot.press("S")  # reverse
        await settle(pilot)
        assert table_ids(app) == [1, 2, 3, 4, 5, 6]
        await pilot.press("s")
        await pilot.pause()
        picker = app.screen
        assert isinstance(picker, SortPicker)
        picker.query_one(OptionList).highlighted = [c.key for c in picker.columns].index("metric:val_acc")
        await pilot.press("a")  # low to high
        await settle(pilot)
        assert (screen.sort_key, screen.sort_desc) == ("metric:val_acc", False)
        assert table_ids(app) == [6, 5, 4, 3, 2, 1]  # val_acc falls with i
        await pilot.press("s", "d")  # the picker opens on the sort column: high to low
        await settle(pilot)
        assert (screen.sort_key, screen.sort_desc) == ("metric:val_acc", True)
        assert table_ids(app) == [1, 2, 3, 4, 5, 6]
        header = screen.query_one(RunsTable).columns
        assert any("▼" in str(c.label) for c in header.values())


async def test_clicking_a_header_sorts_by_that_column(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        keys = [c.key for c in table.shown_columns]
        target = keys.index("metric:loss")
        x = sum(c.get_render_width(table) for c in table.ordered_columns[:target]) + 1
        await pilot.click(RunsTable, offset=(x, 0))
        await settle(pilot)
        losses = [float(table.run_by_id[i].metrics["loss"] or 0) for i in table_ids(app)]
        assert losses == sorted(losses, reverse=True)
        await pilot.click(RunsTable, offset=(x, 0))  # again: the other way
        await settle(pilot)
        losses = [float(table.run_by_id[i].metrics["loss"] or 0) for i in table_ids(app)]
        assert losses == sorted(losses)


async def test_sort_on_a_key_that_needs_quoting(services: Services) -> None:
    tracking = services.tracking
    for i, value in enumerate((0.3, 0.9, 0.1)):
        run = tracking.create_run("odd", now=T0 + i)
        tracking.log_points(run.id, [("val acc/top-1", 0, T0, value)])
    app = app_for(services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ExperimentsScreen)
        screen.sort_on("metric:val acc/top-1", True)
        await settle(pilot)
        assert table_ids(app) == [2, 1, 3]


async def test_more_runs_load_as_the_user_scrolls(services: Services) -> None:
    seed_runs(services.tracking, 150)
    app = app_for(services, page_size=50)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert table_ids(app) == list(range(150, 100, -1))  # the first page only
        await pilot.press("end")
        await settle(pilot)
        assert len(table_ids(app)) == 100
        await pilot.press("end")
        await settle(pilot)
        assert table_ids(app) == list(range(150, 0, -1))
        assert "150 of 150 runs" in str(app.screen.query_one("#summary", Static).render())


async def test_a_short_page_fills_the_screen(seeded: Services) -> None:
    app = app_for(seeded, page_size=2)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=8)
        assert table_ids(app) == [6, 5, 4, 3, 2, 1]


async def test_the_table_follows_new_runs_and_status_changes(seeded: Services) -> None:
    app = app_for(seeded, refresh_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        screen = app.screen
        assert isinstance(screen, ExperimentsScreen)
        table.move_cursor(row=2)  # run 4

        def state() -> object:
            return (table_ids(app), table.current_run_id, screen.reading, screen.generation, status_text(app))

        seeded.tracking.end_run(6, "killed", now=T0 + 3100)
        await until(pilot, lambda: "killed" in str(table.get_row("6")[4]), state)
        new = seeded.tracking.create_run("digits", "late", now=T0 + 4000)
        await until(pilot, lambda: table_ids(app)[0] == new.id, state)
        assert table.current_run_id == 4, state()  # the cursor stays on its run
        await until(pilot, lambda: "7 runs" in status_text(app), state)


# -- run detail ---------------------------------------------------------------------------


async def test_enter_opens_the_run_detail_with_params_and_a_plot(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")  # run 5
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunDetailScreen) and screen.run_id == 5
        params = screen.query_one("#params", DataTable)
        assert {str(params.get_row_at(i)[0]) for i in range(params.row_count)} == {"epochs", "hidden", "lr"}
        metrics = screen.query_one("#metrics", DataTable)
        assert [str(metrics.get_row_at(i)[0]) for i in range(metrics.row_count)] == ["acc", "loss", "val_acc"]
        assert str(metrics.get_row_at(0)[3]) == "50"
        for table_id, rows in (("artifacts", 1), ("datasets", 1), ("tags", 1)):
            assert screen.query_one(f"#{table_id}", DataTable).row_count == rows
        env = screen.query_one("#environment", DataTable)
        env_rows = {str(env.get_row_at(i)[0]): str(env.get_row_at(i)[1]) for i in range(env.row_count)}
        assert env_rows["git sha"].startswith("0123456789") and env_rows["python"] == "3.11.7"
        plot = screen.query_one(MetricPlot)
        assert list(plot.series) == ["acc"]
        steps, values = plot.series["acc"]
        assert steps == list(range(50)) and len(values) == 50
        # pick another curve: loss joins acc
        keys = screen.query_one("#metric-keys", SelectionList)
        keys.focus()
        keys.highlighted = 1
        await pilot.press("space")
        await settle(pilot)
        assert list(plot.series) == ["acc", "loss"]
        await pilot.press("escape")
        assert isinstance(app.screen, ExperimentsScreen)


async def test_long_series_are_thinned_for_the_plot(services: Services) -> None:
    run = services.tracking.create_run("long", now=T0)
    services.tracking.log_points(run.id, [("loss", s, T0 + s, 1 / (1 + s)) for s in range(5000)])
    app = app_for(services)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(RunDetailScreen(run.id))
        await settle(pilot)
        steps, _ = app.screen.query_one(MetricPlot).series["loss"]
        assert len(steps) == 500 and steps[-1] == 4999


async def test_a_running_runs_curves_grow_while_it_logs(
    services: Services, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    """A real process logs through `import mlbox`; the open detail screen follows it live."""
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import mlbox

            with mlbox.start_run("live", experiment="live", log_code=False, log_environment=False) as run:
                for step in range(10):
                    mlbox.log_metric("loss", 1 / (step + 1), step=step)
                mlbox.flush()
                print(run.id, flush=True)
                sys.stdin.readline()
                for step in range(10, 30):
                    mlbox.log_metric("loss", 1 / (step + 1), step=step)
                mlbox.flush()
                print("more", flush=True)
                sys.stdin.readline()
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=subprocess_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        run_id = int(proc.stdout.readline())
        app = app_for(services, live_s=0.1)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(RunDetailScreen(run_id))
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, RunDetailScreen)
            plot = screen.query_one(MetricPlot)
            assert len(plot.series["loss"][0]) == 10
            assert screen.live is not None  # running: the live timer is on
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "more"
            await until(pilot, lambda: len(plot.series["loss"][0]) == 30)
            assert plot.series["loss"][0][-1] == 29
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.wait(timeout=30) == 0
            await until(pilot, lambda: screen.live is None)  # finished: the timer stops
            assert screen.detail is not None and screen.detail.run.status == "finished"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- compare --------------------------------------------------------------------------------


async def test_compare_two_marked_runs(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space", "down", "down", "space")  # runs 6 and 4
        table = app.screen.query_one(RunsTable)
        assert table.marked == [6, 4]
        assert str(table.get_row("6")[0]) == "●" and str(table.get_row("5")[0]) == " "
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        grid = screen.query_one("#compare-table", DataTable)
        assert [str(c.label) for c in grid.columns.values()] == ["", "mlp-5 #6", "mlp-3 #4"]
        rows = {str(grid.get_row_at(i)[0]): grid.get_row_at(i)[1:] for i in range(grid.row_count)}
        assert [str(v) for v in rows["params.lr"]] == ["0.001", "0.1"]
        assert [str(v) for v in rows["params.epochs"]] == ["50", "50"]
        assert set(rows) >= {"metrics.acc", "metrics.loss", "metrics.val_acc"}
        plot = screen.query_one(MetricPlot)
        assert list(plot.series) == ["mlp-5 #6", "mlp-3 #4"]
        assert all(len(steps) == 50 for steps, _ in plot.series.values())
        select = screen.query_one("#compare-metric", Select)
        select.value = "loss"
        await settle(pilot)
        assert plot.plot_title == "loss"


async def test_compare_needs_two_runs(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space", "c")
        await pilot.pause()
        assert isinstance(app.screen, ExperimentsScreen)
        assert any("two or more" in n.message for n in app._notifications)


# -- errors, palette, appliance -------------------------------------------------------------


async def test_a_refused_call_shows_the_error_dialog(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(RunDetailScreen(999))
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        assert str(app.screen.query_one("#message", Static).render()) == "no run 999"
        await pilot.press("escape")
        assert isinstance(app.screen, RunDetailScreen)


async def test_command_palette_switches_and_acts(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Go to Experiments", "Filter runs", "Compare marked runs", "Quit"} <= titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Filter runs")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ExperimentsScreen)
        assert app.focused is app.screen.query_one("#filter", Input)


@pytest.mark.parametrize("width", [160, 100])
async def test_every_section_key_shows_in_the_navigation_bar(services: Services, width: int) -> None:
    """At 100 columns ten full titles do not fit: the other titles are cut, never a key."""
    app = app_for(services)
    async with app.run_test(size=(width, 30)) as pilot:
        await settle(pilot)
        bar = app.screen.query_one(NavBar)
        shown = str(bar.render())
        assert len(shown) <= width
        for section in SECTIONS:
            title = section.title if width == 160 or section.mode == "experiments" else section.title[:SHORT]
            assert f" {section.key} {title} " in shown
        assert (" 0 Pipelines " in shown) is (width == 160)


async def test_beside_a_running_appliance(seeded: Services) -> None:
    app = app_for(seeded, beside_url="http://127.0.0.1:5151")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        text = status_text(app)
        assert "beside appliance" in text and "http://127.0.0.1:5151" in text


@pytest.fixture
def port_services(services: Services) -> Iterator[Services]:
    """Services whose settings ask for a free loopback port chosen by the OS."""
    yield replace(services, settings=replace(services.settings, port=0))


async def test_embedded_appliance_starts_on_mount_and_stops_on_exit(port_services: Services) -> None:
    appliance = Appliance(port_services)
    app = app_for(port_services, appliance=appliance)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.status_info.appliance == "embedded"
        url = app.status_info.api_url
        assert url is not None and url.startswith("http://127.0.0.1:")
        assert url in status_text(app)
        assert port_services.home.appliance_path.exists()
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    assert not port_services.home.appliance_path.exists()  # stopped with the app
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()


async def test_a_busy_port_shows_in_the_status_bar(services: Services) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        busy = replace(services, settings=replace(services.settings, port=blocker.getsockname()[1]))
        app = app_for(busy, appliance=Appliance(busy))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.status_info.appliance == "failed"
            assert "HTTP API off" in status_text(app)
            assert isinstance(app.screen, ExperimentsScreen) and app.screen.query_one(RunsTable)
    finally:
        blocker.close()


# -- formatting and speed -----------------------------------------------------------------------


def test_formats() -> None:
    assert [fmt.duration(s) for s in (0.25, 42, 187, 7500, 273600, None, -1)] == [
        "250ms",
        "42s",
        "3m07s",
        "2h05m",
        "3d04h",
        "-",
        "-",
    ]
    assert [fmt.number(v) for v in (0.1234567, math.nan, math.inf, -math.inf, None)] == [
        "0.123457",
        "nan",
        "inf",
        "-inf",
        "nan",
    ]
    assert fmt.ident("metrics", "val_acc") == "metrics.val_acc"
    assert fmt.ident("metrics", "val acc") == "metrics.`val acc`"
    assert fmt.ident("params", "a`b") == 'params."a`b"'
    for key in ("val acc", "a`b", 'q"uote', "train/loss", "top.1"):
        node = search.parse(f"{fmt.ident('metrics', key)} > 1")
        assert isinstance(node, search.Compare) and node.ident == search.Ident("metric", key)


def test_the_runs_table_opens_fast_over_10k_runs(services: Services) -> None:
    seed_runs(services.tracking, 10_000)
    assert services.tracking.search_runs(limit=1).total == 10_000
    seconds = min(asyncio.run(time_open_runs_table(services)) for _ in range(2))
    # The target is 1 s (measured here about 0.4 s); the bound leaves room for a loaded CI machine.
    assert seconds < 2.0, f"the runs table took {seconds:.2f} s to open over 10,000 runs"


async def test_a_section_seen_before_is_shown_without_textuals_hold_on_updates(services: Services) -> None:
    """Textual holds updates 50 ms on a mode switch to mask a screen being built: the first
    visit of a section keeps the hold, a switch back to a built one draws at once."""
    app = app_for(services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        other = SECTIONS[1]
        app.switch_mode(other.mode)  # built now: held
        assert app._batch_count == 1
        await settle(pilot)
        assert app._batch_count == 0
        app.switch_mode(SECTIONS[0].mode)  # built at start
        assert app._batch_count == 0
        app.switch_mode(other.mode)
        assert app._batch_count == 0 and app.current_mode == other.mode
        await settle(pilot)
        assert app.screen.is_mounted
