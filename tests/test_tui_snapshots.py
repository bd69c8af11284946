"""Snapshot tests of the TUI: one class per screen, at a fixed terminal size, over the
deterministic store of `tests.test_tui.seed_store`.

Times are fixed by the seed and shown in UTC, the home folder is shown as
``~/.mlbox`` and the refresh timer is off, so a snapshot changes only when
the screen does. Update with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at the result (``snapshot_report.html`` on failure) before committing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select

from mlbox.services import Services
from mlbox.tui.app import MlboxApp, make_app
from mlbox.tui.screens.compare import CompareScreen
from mlbox.tui.screens.run_detail import RunDetailScreen
from tests.test_tui import seed_store

SIZE = (120, 36)
Snap = Callable[..., bool]


@pytest.fixture
def app(services: Services, utc: None) -> MlboxApp:
    seed_store(services.tracking)
    return make_app(services, home="~/.mlbox", refresh_s=3600, live_s=3600, build_ahead=False)


async def settle(pilot: Pilot[None]) -> None:
    for _ in range(4):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


class TestExperimentsScreen:
    def test_runs_table(self, app: MlboxApp, snap_compare: Snap) -> None:
        assert snap_compare(app, terminal_size=SIZE, run_before=settle)

    def test_sorted_and_marked(self, app: MlboxApp, snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            screen = pilot.app.screen
            screen.sort_on("metric:val_acc", True)  # type: ignore[attr-defined]
            await settle(pilot)
            await pilot.press("space", "up", "up", "space")  # the cursor stayed on run 6, now last

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

    def test_invalid_filter(self, app: MlboxApp, snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            await pilot.press("slash")
            filter_input = pilot.app.screen.query_one("#filter", Input)
            filter_input.cursor_blink = False
            filter_input.value = "metrics.val_acc >> 0.9"
            await pilot.press("enter")
            await settle(pilot)

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


class TestRunDetailScreen:
    def test_finished_run(self, app: MlboxApp, snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            await pilot.press("down", "enter")
            await settle(pilot)

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

    def test_params_tab_and_two_curves(self, app: MlboxApp, snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            pilot.app.push_screen(RunDetailScreen(2))
            await settle(pilot)
            screen = pilot.app.screen
            screen.query_one("#info").active = "tab-params"  # type: ignore[attr-defined]
            screen.query_one("#metric-keys").select("val_acc")  # type: ignore[attr-defined]
            await settle(pilot)

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


class TestCompareScreen:
    def test_three_runs(self, app: MlboxApp, snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            pilot.app.push_screen(CompareScreen([1, 3, 5]))
            await settle(pilot)

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

    def test_overlaid_loss(self, app: MlboxApp, snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            await pilot.press("space", "down", "space", "c")
            await settle(pilot)
            pilot.app.screen.query_one("#compare-metric", Select).value = "loss"
            await settle(pilot)

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
