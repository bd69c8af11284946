"""The Models screen takes a version out as an MLflow model directory (``e``) and brings one in
(``i``), as `mlbox models export` and `mlbox models import` do, over a real registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from textual.widgets import Checkbox, DataTable, Input, Static

from mlbox.services import Services
from mlbox.tui.widgets.error_dialog import ErrorDialog
from mlbox.tui.widgets.model_transfer import ImportPrompt
from mlbox.tui.widgets.text_prompt import TextPrompt
from tests.test_tui import app_for, settle, until
from tests.test_tui_models import SIZE, open_models, rows, seeded  # noqa: F401 (fixture)


async def test_export_then_import_round_trips_a_version(seeded: Services, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "digits-v3"
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_models(pilot)
        screen.query_one("#versions", DataTable).focus()
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, TextPrompt)
        assert app.screen.query_one(Input).value.endswith("digits-v3-mlflow")  # a default to accept
        app.screen.query_one(Input).value = str(out)
        await pilot.press("enter")
        await settle(pilot)
        await until(pilot, lambda: (out / "MLmodel").exists())
        assert "python_function" in yaml.safe_load((out / "MLmodel").read_text())["flavors"]

        # a pickled python model is refused without trust, naming the field
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, ImportPrompt)
        app.screen.query_one("#folder", Input).value = str(out)
        app.screen.query_one("#name", Input).value = "copied"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        assert str(app.screen.query_one("#field", Static).render()) == "field: trust"
        await pilot.press("escape")
        assert seeded.registry.list_models() and "copied" not in {
            m.name for m in seeded.registry.list_models()
        }

        await pilot.press("i")
        await pilot.pause()
        app.screen.query_one("#folder", Input).value = str(out)
        app.screen.query_one("#name", Input).value = "copied"
        app.screen.query_one(Checkbox).value = True
        app.screen.query_one("#folder", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        await until(pilot, lambda: any(r[0] == "copied" for r in rows(screen.models_table)))
    imported = seeded.registry.resolve("copied/1")
    original = seeded.registry.resolve("digits/3")
    assert imported.flavor == original.flavor
    x = np.arange(8, dtype=np.float64).reshape(2, 4)
    np.testing.assert_array_equal(
        seeded.registry.load("copied/1").predict(x), seeded.registry.load("digits/3").predict(x)
    )


async def test_escape_exports_nothing(seeded: Services, tmp_path: Path) -> None:  # noqa: F811
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await open_models(pilot)
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one(Input).value = str(tmp_path / "never")
        await pilot.press("escape")
        await settle(pilot)
        assert not (tmp_path / "never").exists()
        await pilot.press("i", "escape")
        await settle(pilot)
    assert {m.name for m in seeded.registry.list_models()} == {"digits", "wine"}
