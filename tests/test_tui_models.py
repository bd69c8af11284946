"""The Models screen over a real registry: models, versions, aliases and their runs' metrics;
promote, set, roll back and delete an alias, each after a confirmation.

Every test seeds a fresh home through the tracking and registry services
(small scikit-learn trees logged by runs, then registered from the runs'
artifacts), drives the app with keys and waits for the workers before
asserting. The snapshot class fixes the registry's times in the test
database after seeding: the service stamps them with ``time.time()``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Static

from mlbox.registry.flavors import save_model
from mlbox.registry.refs import check_alias
from mlbox.registry.schemas import AliasMove
from mlbox.services import Services
from mlbox.store.errors import InvalidInput, NotFound
from mlbox.tracking.provenance import CodeVersion
from mlbox.tracking.schemas import Run
from mlbox.tui.app import MlboxApp
from mlbox.tui.screens.experiments import ExperimentsScreen
from mlbox.tui.screens.models import ModelsScreen
from mlbox.tui.screens.run_detail import RunDetailScreen
from mlbox.tui.views.models import EMPTY, alias_stack, key_metrics
from mlbox.tui.widgets.alias_dialogs import AliasChooser, AliasPrompt
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
from mlbox.tui.widgets.error_dialog import ErrorDialog
from tests.models import Doubler
from tests.test_tui import app_for, settle, until

T0 = 1_700_000_000.0
SIZE = (120, 36)
Snap = Callable[..., bool]
SHA = "0123456789abcdef0123456789abcdef01234567"


def _data() -> tuple[np.ndarray, np.ndarray]:
    x = np.array([[i % 5, i % 3, i % 7, i % 2] for i in range(40)], dtype=np.float64)
    return x, (x[:, 0] + x[:, 2] > 5).astype(np.int64)


def _train_and_register(services: Services, model: str, experiment: str, i: int, folder: Path) -> None:
    """One run that logs metrics, a dataset and a small model, then registers it as a new version."""
    tracking = services.tracking
    x, _ = _data()
    start = T0 + i * 600
    run = tracking.create_run(
        experiment,
        f"tree-{i}",
        host="lab",
        pid=0,
        code=CodeVersion(SHA, i == 2, "", None),
        now=start,
    )
    tracking.log_params(run.id, {"max_depth": i + 1})
    tracking.log_points(
        run.id,
        [
            ("val_acc", 9, start + 60, 0.8 + 0.05 * i),
            ("loss", 9, start + 60, 0.5 - 0.1 * i),
            ("train_acc", 9, start + 60, 0.85 + 0.05 * i),
        ],
    )
    tracking.log_dataset(
        run.id, name="digits", digest=f"{i:02d}" + "cd" * 31, source="sklearn", rows=len(x), schema={}
    )
    # A plain python-flavor model: its pickle bytes (and so the sha256 in the
    # snapshots) do not depend on which strings earlier tests happened to intern,
    # as a fitted scikit-learn tree's do.
    save_model(Doubler(float(i + 1)), folder / f"tree-{i}", example_input=x[:2])
    tracking.log_artifact(run.id, folder / f"tree-{i}", "model")
    tracking.end_run(run.id, "finished", now=start + 90)
    services.registry.register(model, run_id=run.id, example_input=x[:2], description=f"depth {i + 1}")


def fix_times(services: Services) -> None:
    """Stamp the registry's rows with fixed times (test setup: the service uses the wall clock).

    Versions are immutable by trigger; the trigger is dropped for this one
    update and put back as it was, in one transaction.
    """
    with services.registry.db.atomic() as conn:
        (trigger,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'model_versions_immutable'"
        ).fetchone()
        conn.execute("DROP TRIGGER model_versions_immutable")
        conn.execute("UPDATE models SET created_at = ?", (T0 + 120,))
        conn.execute(
            "UPDATE model_versions SET created_at = ? + 600 * (run_id - 1) + 120 WHERE run_id IS NOT NULL",
            (T0,),
        )
        conn.execute(trigger)
        conn.execute("UPDATE alias_history SET moved_at = ? + 60 * id", (T0 + 3600,))


def seed_registry(services: Services) -> None:
    """Model ``digits`` with versions 1–3 (runs 1–3) and ``wine`` with version 1 (run 4).

    digits@champion went 1 → 2, digits@challenger is 3, wine@champion is 1;
    the run behind digits version ``v`` ends with val_acc ``0.75 + 0.05 v``.
    """
    with tempfile.TemporaryDirectory(prefix="mlbox-seed-") as tmp:
        for i in range(3):
            _train_and_register(services, "digits", "digits", i, Path(tmp))
        _train_and_register(services, "wine", "wine", 3, Path(tmp))
    registry = services.registry
    registry.set_alias("digits", "champion", 1, note="first")
    registry.set_alias("digits", "champion", 2, note="better val_acc")
    registry.set_alias("digits", "challenger", 3)
    registry.set_alias("wine", "champion", 1)
    fix_times(services)


@pytest.fixture
def seeded(services: Services) -> Services:
    seed_registry(services)
    return services


async def open_models(pilot: Pilot[None]) -> ModelsScreen:
    await settle(pilot)
    await pilot.press("2")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ModelsScreen)
    # under load the models -> versions -> detail chain can outlast a fixed number of rounds
    if screen.registry.list_models():
        await until(
            pilot, lambda: not screen.reading and screen.versions_table.row_count > 0, lambda: screen.reading
        )
    await settle(pilot)
    return screen


def rows(table: DataTable[object]) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def champion(services: Services, name: str = "digits") -> int:
    return services.registry.resolve(f"{name}@champion").version


def dialog_change(app: MlboxApp) -> str:
    assert isinstance(app.screen, ConfirmDialog), app.screen
    return str(app.screen.query_one("#change", Static).render())


# -- pure helpers ---------------------------------------------------------------------------


def _move(alias: str, before: int | None, after: int | None) -> AliasMove:
    return AliasMove(0, "m", alias, before, after, 0.0, "")


def test_alias_stack_undoes_rollbacks() -> None:
    moves = [
        _move("champion", None, 1),
        _move("champion", 1, 2),
        _move("x", None, 5),
        _move("champion", 2, 3),
    ]
    assert alias_stack(moves) == [1, 2, 3]
    assert alias_stack([*moves, _move("champion", 3, 2)]) == [1, 2]  # rolled back: next goes to 1
    assert alias_stack([*moves, _move("champion", 3, 1)]) == [1, 2, 3, 1]  # a jump is a new move
    assert alias_stack([*moves, _move("champion", 3, None), _move("champion", None, 2)]) == [2]
    assert alias_stack(moves, "x") == [5]


def _run(**metrics: float) -> Run:
    return Run(1, 1, "e", "r", "finished", 0.0, None, 0.0, "", 0, None, None, metrics=dict(metrics))


def test_key_metrics_prefers_keys_most_runs_have() -> None:
    runs = [_run(val_acc=0.9, zeta=1), _run(zeta=2, alpha=1), _run(zeta=3, beta=2, alpha=0)]
    assert key_metrics(runs) == ["zeta", "alpha", "beta", "val_acc"]
    assert key_metrics(runs, limit=2) == ["zeta", "alpha"]
    assert key_metrics([]) == []


# -- the list -------------------------------------------------------------------------------


async def test_the_list_shows_models_versions_aliases_and_run_metrics(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_models(pilot)
        models = rows(screen.query_one("#models", DataTable))
        assert [r[:4] for r in models] == [
            ["digits", "3", "champion→2 challenger→3", "3"],
            ["wine", "1", "champion→1", "1"],
        ]
        versions_table = screen.query_one("#versions", DataTable)
        labels = [str(c.label) for c in versions_table.columns.values()]
        assert labels == [
            "version",
            "flavor",
            "created",
            "aliases",
            "run",
            "loss",
            "train_acc",
            "val_acc",
            "signature",
        ]
        versions = rows(versions_table)
        assert [(r[0], r[1], r[3], r[4]) for r in versions] == [
            ("3", "python", "challenger", "#3"),
            ("2", "python", "champion", "#2"),
            ("1", "python", "", "#1"),
        ]
        assert [r[7] for r in versions] == ["0.9", "0.85", "0.8"]  # the runs' latest val_acc
        assert versions[0][8].startswith("float64 [*, 4] → float64")
        # the detail pane: the newest version's lineage, signature, files, and the history
        mv = seeded.registry.get_version("digits", 3)
        lineage = str(screen.query_one("#lineage", Static).render())
        assert "#3 tree-2" in lineage and "digits" in lineage and "run:3/model" in lineage
        assert "0123456789ab dirty" in lineage and "training/digits  02cdcdcdcdcd" in lineage
        signature = str(screen.query_one("#signature", Static).render())
        assert "input: float64 [*, 4]" in signature and "outputs" in signature
        files = rows(screen.query_one("#files", DataTable))
        assert [(r[0], r[2]) for r in files] == [(f.path, f.sha256[:12]) for f in mv.files]
        history = rows(screen.query_one("#history", DataTable))
        assert [[r[0], r[1], r[3]] for r in history] == [  # digits' moves only, newest first
            ["challenger", "– → 3", ""],
            ["champion", "1 → 2", "better val_acc"],
            ["champion", "– → 1", "first"],
        ]
        # another model: its versions replace digits'
        screen.query_one("#models", DataTable).move_cursor(row=1)
        await settle(pilot)
        assert [r[0] for r in rows(versions_table)] == ["1"]
        assert rows(screen.query_one("#history", DataTable))[0][:2] == ["champion", "– → 1"]


async def test_the_list_follows_moves_made_elsewhere(seeded: Services) -> None:
    app = app_for(seeded, refresh_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_models(pilot)
        models = screen.query_one("#models", DataTable)
        seeded.registry.set_alias("digits", "champion", 3, note="from the CLI")
        await until(pilot, lambda: "champion→3" in rows(models)[0][2], lambda: rows(models))
        await until(pilot, lambda: rows(screen.query_one("#history", DataTable))[0][3] == "from the CLI")


async def test_an_empty_registry_says_how_to_register(services: Services) -> None:
    app = app_for(services)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_models(pilot)
        assert str(screen.query_one("#summary", Static).render()) == EMPTY
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, ModelsScreen)
        assert any("Select a model version" in n.message for n in app._notifications)


# -- moving aliases -----------------------------------------------------------------------------


async def test_promote_after_confirmation_moves_champion(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_models(pilot)
        await pilot.press("enter")  # into the versions: the newest, version 3
        assert app.focused is screen.query_one("#versions", DataTable)
        await pilot.press("p")
        await pilot.pause()
        assert dialog_change(app) == "digits@champion: 2 → 3"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ModelsScreen)
        assert champion(seeded) == 3
        last = seeded.registry.alias_history("digits", "champion")[-1]
        assert (last.from_version, last.to_version, last.note) == (2, 3, "promoted in the TUI")
        assert rows(screen.query_one("#models", DataTable))[0][2] == "champion→3 challenger→3"
        assert rows(screen.query_one("#versions", DataTable))[0][3] == "champion challenger"
        assert rows(screen.query_one("#history", DataTable))[0][:2] == ["champion", "2 → 3"]
        # already champion: nothing to confirm
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, ModelsScreen)
        assert any("already version 3" in n.message for n in app._notifications)


@pytest.mark.parametrize("key", ["escape", "n"])
async def test_cancelling_the_confirmation_leaves_the_alias(seeded: Services, key: str) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_models(pilot)
        screen.query_one("#versions", DataTable).move_cursor(row=2)  # version 1
        await pilot.press("p")
        await pilot.pause()
        assert dialog_change(app) == "digits@champion: 2 → 1"
        await pilot.press(key)
        await settle(pilot)
        assert isinstance(app.screen, ModelsScreen)
        assert champion(seeded) == 2
        assert len(seeded.registry.alias_history("digits", "champion")) == 2


async def test_roll_back_returns_champion_to_its_previous_versions(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_models(pilot)
        await pilot.press("enter", "p", "y")  # champion 2 → 3
        await settle(pilot)
        assert champion(seeded) == 3
        await pilot.press("r")
        await pilot.pause()
        assert dialog_change(app) == "digits@champion: 3 → 2"
        await pilot.press("y")
        await settle(pilot)
        assert champion(seeded) == 2
        await pilot.press("r")  # again: on to the version before, not back to 3
        await pilot.pause()
        assert dialog_change(app) == "digits@champion: 2 → 1"
        await pilot.press("enter")
        await settle(pilot)
        assert champion(seeded) == 1
        await pilot.press("r")  # nothing earlier
        await pilot.pause()
        assert isinstance(app.screen, ModelsScreen)
        assert any("no earlier version" in n.message for n in app._notifications)
        assert [m.note for m in seeded.registry.alias_history("digits", "champion")][-2:] == [
            "rolled back in the TUI",
            "rolled back in the TUI",
        ]
        assert screen.aliases()["champion"] == 1


async def test_set_a_custom_alias(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_models(pilot)
        screen.query_one("#versions", DataTable).move_cursor(row=1)  # version 2
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, AliasPrompt)
        await pilot.press(*"staging", "enter")
        await pilot.pause()
        assert dialog_change(app) == "digits@staging: – → 2"
        await pilot.press("y")
        await settle(pilot)
        assert seeded.registry.resolve("digits@staging").version == 2
        assert rows(screen.query_one("#models", DataTable))[0][2] == "champion→2 challenger→3 staging→2"
        # moving challenger (an existing alias) shows where it was
        screen.query_one("#versions", DataTable).move_cursor(row=2)
        await pilot.press("a", *"challenger", "enter")
        await pilot.pause()
        assert dialog_change(app) == "digits@challenger: 3 → 1"
        await pilot.press("escape")
        await settle(pilot)
        assert seeded.registry.resolve("digits@challenger").version == 3


@pytest.mark.parametrize("name", ["Bad Name", "latest", ""])
async def test_an_invalid_alias_name_shows_the_error_dialog(seeded: Services, name: str) -> None:
    with pytest.raises(InvalidInput) as expected:
        check_alias(name)
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await open_models(pilot)
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one(Input).value = name
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)  # no confirmation: the name is refused first
        assert str(app.screen.query_one("#message", Static).render()) == expected.value.message
        assert str(app.screen.query_one("#field", Static).render()) == "field: alias"
        await pilot.press("escape")
        assert isinstance(app.screen, ModelsScreen)
        assert {m.alias for m in seeded.registry.alias_history("digits")} == {"champion", "challenger"}


async def test_delete_an_alias_after_choosing_it(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await open_models(pilot)
        await pilot.press("d")  # the cursor is on version 3: challenger is offered first
        await pilot.pause()
        chooser = app.screen
        assert isinstance(chooser, AliasChooser)
        options = chooser.query_one(OptionList)
        assert [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)] == [
            "champion → 2",
            "challenger → 3",
        ]
        await pilot.press("enter")
        await pilot.pause()
        assert dialog_change(app) == "digits@challenger: 3 → –"
        await pilot.press("y")
        await settle(pilot)
        with pytest.raises(NotFound):
            seeded.registry.resolve("digits@challenger")
        assert champion(seeded) == 2
        assert rows(app.screen.query_one("#models", DataTable))[0][2] == "champion→2"


async def test_a_move_refused_by_the_registry_shows_the_error_dialog(seeded: Services) -> None:
    """The alias is deleted elsewhere (the CLI) while the dialogs are open: the service's refusal shows."""
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await open_models(pilot)
        await pilot.press("d", "enter")
        await pilot.pause()
        assert dialog_change(app) == "digits@challenger: 3 → –"
        seeded.registry.delete_alias("digits", "challenger", note="from the CLI")
        await pilot.press("y")
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        assert (
            str(app.screen.query_one("#message", Static).render())
            == "model 'digits' has no alias 'challenger'"
        )
        await pilot.press("escape")
        assert isinstance(app.screen, ModelsScreen)
        await pilot.press("d")  # the next look at the aliases is fresh: only champion is left
        await pilot.pause()
        options = app.screen.query_one(OptionList)
        assert [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)] == [
            "champion → 2"
        ]


async def test_enter_on_a_version_opens_its_run(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await open_models(pilot)
        await pilot.press("enter", "down", "enter")  # version 2, from run 2
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunDetailScreen) and screen.run_id == 2
        assert screen.detail is not None and screen.detail.run.name == "tree-1"
        await pilot.press("escape")
        assert isinstance(app.screen, ModelsScreen)


async def test_navigation_key_and_palette(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ExperimentsScreen)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert "Go to Models" in titles
        await pilot.press("2")
        await settle(pilot)
        assert isinstance(app.screen, ModelsScreen)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Promote to champion", "Roll back champion", "Set an alias", "Delete an alias"} <= titles
        await pilot.press("1")
        assert isinstance(app.screen, ExperimentsScreen)


# -- snapshots ------------------------------------------------------------------------------------


class TestModelsScreen:
    def test_models_versions_and_detail(self, seeded: Services, utc: None, snap_compare: Snap) -> None:
        assert snap_compare(app_for(seeded, live_s=3600), terminal_size=SIZE, run_before=open_models)

    def test_promote_confirmation(self, seeded: Services, utc: None, snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await open_models(pilot)
            await pilot.press("enter", "p")
            await pilot.pause()

        assert snap_compare(app_for(seeded, live_s=3600), terminal_size=SIZE, run_before=run_before)
