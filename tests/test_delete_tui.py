"""Deleting in the TUI with Pilot over a real home: a run from the Experiments table and from
its detail screen, an experiment from the sidebar, the deleted view (``D``) and restoring
(``R``); a version and a model on the Models screen; refusals in the error dialog. Each
deletion waits for the confirmation (``y``), and ``n`` leaves everything as it was."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from mlbox.services import Services
from mlbox.tui.app import MlboxApp, make_app
from mlbox.tui.screens.experiments import ExperimentsScreen
from mlbox.tui.screens.models import ModelsScreen
from mlbox.tui.screens.run_detail import RunDetailScreen
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
from mlbox.tui.widgets.error_dialog import ErrorDialog
from mlbox.tui.widgets.experiments_list import ExperimentsList
from tests.models import Doubler
from tests.test_tui import T0, app_for, seed_store, settle, table_ids, until

SIZES = [(160, 48), (100, 30)]
Snap = Callable[..., bool]


@pytest.fixture
def runs(services: Services) -> list[int]:
    """Three finished runs in 'exp' (newest first in the table), one in 'other'; the oldest
    registered as model 'm' version 1."""
    t = services.tracking
    ids = [t.create_run("exp", f"r{i}", now=1000.0 + i).id for i in range(3)]
    ids.append(t.create_run("other", "o", now=2000.0).id)
    for i in ids:
        t.end_run(i)
    services.registry.register("m", model=Doubler(), run_id=ids[0])
    return ids


async def _experiments(pilot: Pilot[None]) -> ExperimentsScreen:
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ExperimentsScreen)
    return screen


@pytest.mark.parametrize("size", SIZES)
async def test_delete_a_run_see_it_deleted_and_restore_it(
    services: Services, runs: list[int], size: tuple[int, int]
) -> None:
    app = app_for(services)
    async with app.run_test(size=size) as pilot:
        screen = await _experiments(pilot)
        assert table_ids(app) == [runs[3], runs[2], runs[1], runs[0]]
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")  # cancelled: nothing goes
        await settle(pilot)
        assert services.tracking.get_run(runs[3]).deleted_at is None
        await pilot.press("d", "y")
        await until(pilot, lambda: table_ids(app) == [runs[2], runs[1], runs[0]], lambda: table_ids(app))
        assert services.tracking.get_run(runs[3]).deleted_at is not None
        await pilot.press("D")
        await until(pilot, lambda: table_ids(app) == [runs[3]], lambda: table_ids(app))
        assert str(screen.sub_title).startswith("deleted runs")
        assert screen.query_one(ExperimentsList).names == []  # no experiment is deleted
        sidebar = screen.query_one(ExperimentsList)  # yet "all experiments" counts the deleted run
        await until(pilot, lambda: str(sidebar.get_option_at_index(0).prompt).split()[-1] == "1")
        await pilot.press("R")
        await until(pilot, lambda: table_ids(app) == [], lambda: table_ids(app))
        await pilot.press("D")
        await until(pilot, lambda: len(table_ids(app)) == 4, lambda: table_ids(app))


async def test_a_refusal_names_the_model_and_deletes_nothing(services: Services, runs: list[int]) -> None:
    app = app_for(services)
    async with app.run_test(size=SIZES[0]) as pilot:
        await _experiments(pilot)
        for _ in range(3):
            await pilot.press("down")  # the oldest run: model m's source
        await pilot.press("d", "y")
        await until(pilot, lambda: isinstance(app.screen, ErrorDialog), lambda: app.screen)
        dialog = app.screen
        assert isinstance(dialog, ErrorDialog)
        assert f"model 'm' version 1 was registered from run {runs[0]}" in dialog.error.message
        assert services.tracking.get_run(runs[0]).deleted_at is None


async def test_delete_from_run_detail_and_an_experiment_from_the_sidebar(
    services: Services, runs: list[int]
) -> None:
    app = app_for(services)
    async with app.run_test(size=SIZES[1]) as pilot:
        await _experiments(pilot)
        await pilot.press("down", "enter")  # run r2's detail
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen), lambda: app.screen)
        await pilot.press("d", "y")
        await until(pilot, lambda: isinstance(app.screen, ExperimentsScreen), lambda: app.screen)
        assert services.tracking.get_run(runs[2]).deleted_at is not None
        await pilot.press("e", "down", "down")  # the sidebar: all, exp, other
        await pilot.press("d", "y")
        await until(pilot, lambda: services.tracking.get_experiment("other").deleted_at is not None)
        await until(pilot, lambda: app.screen.query_one(ExperimentsList).names == ["exp"])


async def test_delete_a_version_then_the_model(services: Services, runs: list[int]) -> None:
    services.registry.register("m", model=Doubler(3.0))
    services.registry.set_alias("m", "champion", 2)
    app = app_for(services)
    async with app.run_test(size=SIZES[0]) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await until(
            pilot, lambda: isinstance(app.screen, ModelsScreen) and app.screen.versions_table.row_count == 2
        )
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        await pilot.press("x")  # the models table has the focus: m still has an alias
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmDialog)
        await pilot.press("enter")  # to the versions table, newest (2, champion) first
        await pilot.press("x")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmDialog)  # champion points to it
        await pilot.press("down", "x", "y")
        await until(
            pilot, lambda: screen.versions_table.row_count == 1, lambda: screen.versions_table.row_count
        )
        assert [v.version for v in services.registry.list_versions("m")] == [2]
        services.registry.delete_alias("m", "champion")
        screen.reload()
        await settle(pilot)
        screen.models_table.focus()
        await pilot.press("x", "y")
        await until(pilot, lambda: services.registry.list_models() == [])


# -- snapshots ---------------------------------------------------------------------------


@pytest.fixture
def seeded_app(services: Services, utc: None) -> MlboxApp:
    """The suite's seeded store (fixed times), runs 2 and 5 deleted."""
    seed_store(services.tracking)
    for run_id in (2, 5):
        services.tracking.delete_run(run_id, now=T0 + 7200)
    return make_app(services, home="~/.mlbox", refresh_s=3600, live_s=3600, build_ahead=False)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
class TestDeleteViews:
    def test_deleted_runs(self, seeded_app: MlboxApp, size: tuple[int, int], snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            await pilot.press("D")
            await settle(pilot)

        assert snap_compare(seeded_app, terminal_size=size, run_before=run_before)

    def test_confirm_deleting_a_run(
        self, seeded_app: MlboxApp, size: tuple[int, int], snap_compare: Snap
    ) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            await pilot.press("d")
            await pilot.pause()

        assert snap_compare(seeded_app, terminal_size=size, run_before=run_before)
