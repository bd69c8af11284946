"""``n`` renames an experiment from the Experiments screen, as `mlbox experiments rename` does:
the sidebar and the table follow the new name; a taken name ends in the error dialog and
changes nothing."""

from __future__ import annotations

from textual.widgets import Input, Static

from mlbox.services import Services
from mlbox.tui.screens.experiments import ExperimentsScreen
from mlbox.tui.widgets.error_dialog import ErrorDialog
from mlbox.tui.widgets.experiments_list import ExperimentsList
from mlbox.tui.widgets.text_prompt import TextPrompt
from tests.test_tui import app_for, seeded, settle, table_ids, until  # noqa: F401 (fixture)
from tests.test_tui_experiments import SIZE, choose


async def test_rename_the_chosen_experiment_and_refuse_a_taken_name(seeded: Services) -> None:  # noqa: F811
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n")  # all experiments: nothing to rename
        await settle(pilot)
        assert not isinstance(app.screen, TextPrompt)
        await choose(pilot, "baseline")
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, TextPrompt)
        assert app.screen.query_one(Input).value == "baseline"  # offered to edit
        app.screen.query_one(Input).value = "logreg"
        await pilot.press("enter")
        await settle(pilot)
        sidebar = app.screen.query_one(ExperimentsList)
        await until(pilot, lambda: sidebar.names == ["digits", "logreg"], lambda: sidebar.names)
        assert isinstance(app.screen, ExperimentsScreen) and app.screen.experiment == "logreg"
        assert table_ids(app) == [6, 5]
        assert [r.id for r in seeded.tracking.search_runs("", experiments=["logreg"]).runs] == [6, 5]

        await pilot.press("n")
        await pilot.pause()
        app.screen.query_one(Input).value = "digits"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        assert "already exists" in str(app.screen.query_one("#message", Static).render())
    assert sorted(e.name for e in seeded.tracking.list_experiments()) == ["digits", "logreg"]
