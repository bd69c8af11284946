"""The Monitor screen (key 8) over a real home: drift per feature sorted by severity, accuracy
over time (realised beside estimated), open alerts; monitors run from the screen; snapshots
at 160x48 and 100x30."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from mlbox.monitoring.schemas import FeedbackItem
from mlbox.services import Services
from mlbox.tui.screens.monitoring import MonitorScreen
from tests.test_monitoring_service import T0, seed
from tests.test_tui import app_for, settle, until

Snap = Callable[..., bool]


@pytest.fixture
def seeded(services: Services, tmp_path: Path) -> Services:
    world = seed(services, tmp_path)
    mon = services.monitoring
    mon.set_reference("clf@champion", path=world.ref_file)
    truth = (world.base_x[:, 0] + world.base_x[:, 1] > 0).astype(int)
    mon.add_feedback([FeedbackItem(f"b{i}", int(truth[i])) for i in range(0, 200, 2)])
    m = mon.create_monitor(
        "clf@champion", window_s=1e9, checks=["drift", "outliers"], thresholds={"drift": 0.2}
    )
    mon.run_monitor(m.id, now=T0 + 2000)
    return services


async def open_monitor(pilot: Pilot[None]) -> None:
    await settle(pilot)
    await pilot.press("8")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, MonitorScreen)
    await until(pilot, lambda: not screen.reading and bool(screen.targets))
    await settle(pilot)


def _cells(table: DataTable[object]) -> list[list[str]]:
    return [[str(c) for c in table.get_row(k)] for k in table.rows]


async def test_screen_shows_drift_performance_and_alerts(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_monitor(pilot)
        screen = app.screen
        assert isinstance(screen, MonitorScreen)
        targets = _cells(screen.query_one("#targets", DataTable))
        assert targets[0][:4] == ["clf@champion", "1", "400", "1/4"]
        drift = _cells(screen.query_one("#drift", DataTable))
        assert drift[0][0] == "input_0" and drift[0][4].startswith("DRIFT")
        assert all(row[4].startswith("ok") for row in drift[1:])
        alerts = str(screen.query_one("#alerts", Static).render())
        assert "clf@champion · drift" in alerts and "clf@champion · outliers" in alerts
        evaluation = screen.targets[0].evaluation
        assert evaluation is not None and evaluation.performance.labelled == 100
        assert evaluation.performance.estimated_accuracy is not None

        # the monitor run from the screen: still breached, nothing new raised
        await pilot.press("m")
        await until(pilot, lambda: not screen.reading)
        await settle(pilot)
        assert "ran 1 monitor: 0 raised, 0 cleared" in str(screen.query_one("#summary", Static).render())
        assert len(seeded.monitoring.alerts()) == 2

        # SHAP bars of the latest prediction: they add up to the prediction minus the baseline
        shap = screen.query_one("#shap", Static)
        await pilot.press("e")
        await until(pilot, lambda: "latest prediction:" in str(shap.render()), lambda: str(shap.render()))
        text = str(shap.render())
        assert "input_" in text and "+" in text.split("\n", 1)[1], text
        latest = seeded.monitoring.latest_rows("clf@champion", 1)
        found = seeded.monitoring.explanations.explain("clf@champion", latest.to_numpy())
        row = found.rows[0]
        assert sum(row.values.values()) == pytest.approx(row.prediction - row.expected_value, abs=1e-6)
        assert f"{row.prediction:.3g}" in text


def _svg_text(svg: str) -> str:
    return "\n".join(html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", svg))


class TestMonitorScreen:
    def test_wide(self, seeded: Services, utc: None, snap_compare: Snap) -> None:
        assert snap_compare(app_for(seeded), terminal_size=(160, 48), run_before=open_monitor)

    def test_narrow(self, seeded: Services, utc: None, snap_compare: Snap) -> None:
        assert snap_compare(app_for(seeded), terminal_size=(100, 30), run_before=open_monitor)


async def test_promotes_a_better_challenger_after_a_confirmation(services: Services, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
    from tests.test_monitoring_service import _proba

    world = seed(services, tmp_path)
    services.monitoring.set_reference("clf@champion", path=world.ref_file)
    app = app_for(services)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_monitor(pilot)
        await pilot.press("p")  # no challenger yet: nothing to promote
        await settle(pilot)
        assert isinstance(app.screen, MonitorScreen)

        x = world.base_x
        services.registry.register(
            "clf", model=LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), example_input=x[:2]
        )
        services.registry.set_alias("clf", "challenger", 2)
        log = services.serving.predlog
        assert log is not None
        proba = _proba(x)
        truth = proba.argmax(axis=1)
        for i in range(200):  # the challenger differs on the first 40 rows, and the labels side with it
            p = proba[i : i + 1, ::-1] if i < 40 else proba[i : i + 1]
            log.append((f"b{i}", "clf", 2, T0 + i + 0.5, 1.0, True, x[i : i + 1], {"proba": p}))
        log.flush()
        services.monitoring.add_feedback(
            [FeedbackItem(f"b{i}", int(1 - truth[i] if i < 40 else truth[i])) for i in range(100)]
        )
        await pilot.press("r")
        screen = app.screen
        assert isinstance(screen, MonitorScreen)
        await until(pilot, lambda: not screen.reading)
        await settle(pilot)
        assert [t.ref for t in screen.targets] == ["clf@challenger", "clf@champion"]
        champion = screen.targets[1].evaluation
        assert champion is not None and champion.challenger is not None
        assert champion.challenger.better == "challenger" and champion.challenger.challenger_only_right == 40
        await pilot.press("p")  # the challenger's own row is selected: nothing to promote there
        await settle(pilot)
        assert isinstance(app.screen, MonitorScreen)
        await pilot.press("down")
        await settle(pilot)
        assert screen.selected == "clf@champion"
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        assert "clf@champion: 1 → 2" in app.screen.change
        await pilot.press("enter")
        await until(pilot, lambda: services.registry.get_model("clf").aliases.get("champion") == 2)
        history = services.registry.alias_history("clf", "champion")
        assert "Monitor screen" in history[0].note or "Monitor screen" in history[-1].note
