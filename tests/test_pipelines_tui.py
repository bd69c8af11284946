"""The Pipelines screen (key 0) over real runs: the DAG with step states and cache hits, a
step's log, retry and cancel after a confirmation; snapshots at 160x48 and 100x30."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from mlbox.services import Services
from mlbox.tui.screens.pipelines import EMPTY, PipelinesScreen
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
from mlbox.tui.widgets.dag import DagView
from tests import test_pipelines_defs as defs
from tests.test_tui import app_for, settle, until

Snap = Callable[..., bool]
T0 = 1_764_979_200.0  # 2025-12-06 00:00 UTC


@pytest.fixture
def seeded(services: Services) -> Services:
    """Three runs: one that ran, one all cached but the uncached step, one with a failed step."""
    p = services.pipelines
    defs.FAIL.clear()
    p.wait(p.submit(defs.small, {"n": 6}).id, timeout_s=30)
    p.wait(p.submit(defs.small, {"n": 6}).id, timeout_s=30)
    defs.FAIL.add("summarize")
    p.wait(p.submit(defs.small, {"n": 6}, no_cache_steps=["summarize"]).id, timeout_s=30)
    defs.FAIL.clear()
    p.close()
    with services.pipelines.db.atomic() as conn:
        conn.execute(
            "UPDATE pipeline_runs SET created_at = ? + id * 60, finished_at = ? + id * 60 + 2", (T0, T0)
        )
        conn.execute(
            "UPDATE step_runs SET started_at = ? + id, finished_at = ? + id + 0.5, log = CASE state"
            " WHEN 'failed' THEN 'attempt 1: failed' || char(10) || 'RuntimeError: summarize was told to fail'"
            " || char(10) ELSE log END",
            (T0, T0),
        )
    return services


def dag(app: object) -> str:
    screen = app.screen  # type: ignore[attr-defined]
    return str(screen.query_one("#dag", DagView).render())


async def open_pipelines(pilot: Pilot[None]) -> None:
    await settle(pilot)
    await pilot.press("0")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, PipelinesScreen)
    await until(pilot, lambda: not screen.reading and screen.detail is not None)
    await settle(pilot)


async def test_empty_screen(services: Services) -> None:
    app = app_for(services)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("0")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, PipelinesScreen)
        await until(pilot, lambda: not screen.reading)
        assert str(screen.query_one("#summary", Static).render()) == EMPTY
        await pilot.press("r")
        await pilot.pause()
        assert app.screen is screen  # nothing to retry: a warning, no dialog
        assert {"Retry pipeline step", "Cancel pipeline run"} <= {
            c.title for c in app.get_system_commands(screen)
        }


async def test_dag_states_log_and_retry_after_confirmation(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_pipelines(pilot)
        screen = app.screen
        assert isinstance(screen, PipelinesScreen)
        assert screen.detail is not None and screen.detail.id == 3  # the newest run
        text = dag(app)
        assert "│summarize" in text and "✗ failed" in text and "- skipped" in text and "↺ cached" in text
        assert screen.query_one("#dag-box").border_subtitle == "3 of 5 cached"
        # the failed step's log
        screen.steps_table.focus()
        order = [s.node for s in screen.detail.steps]
        screen.steps_table.move_cursor(row=order.index("summarize"))
        await settle(pilot)
        assert screen.selected_node() == "summarize"
        await until(pilot, lambda: "told to fail" in str(screen.query_one("#log", Static).render()))
        # retry: a confirmation first; escape changes nothing
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("escape")
        await pilot.pause()
        assert seeded.pipelines.get_run(3).state == "failed"
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        assert seeded.pipelines.get_run(3).state == "running"
        done = seeded.pipelines.wait(3, timeout_s=30)
        assert done.state == "succeeded"
        screen.reload()
        await until(pilot, lambda: screen.detail is not None and screen.detail.state == "succeeded")
        assert "✗ failed" not in dag(app)


async def test_cancel_after_confirmation(services: Services, tmp_path: Path) -> None:
    run = services.pipelines.submit(defs.marks, {"folder": str(tmp_path), "seconds": 0.1})
    app = app_for(services)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_pipelines(pilot)
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("enter")
        await settle(pilot)
        assert services.pipelines.get_run(run.id).state == "cancelled"


async def test_start_a_run_with_parameters_after_confirmation(seeded: Services) -> None:
    from textual.widgets import Input

    from mlbox.tui.widgets.dag_run_prompt import RunPrompt

    app = app_for(seeded)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_pipelines(pilot)
        screen = app.screen
        assert isinstance(screen, PipelinesScreen)
        assert "tests.test_pipelines_defs:small" in screen.refs
        await pilot.press("n")
        await pilot.pause()
        prompt = app.screen
        assert isinstance(prompt, RunPrompt)
        assert prompt.query_one("#ref", Input).value == "tests.test_pipelines_defs:small"
        assert prompt.query_one("#params", Input).value == '{"n":6,"scale":2.0}'  # the selected run's
        prompt.query_one("#params", Input).value = "[1, 2]"  # not an object: refused, nothing asked
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is prompt and len(seeded.pipelines.list_runs()) == 3
        prompt.query_one("#params", Input).value = '{"n": 9}'
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("escape")  # not confirmed: no run
        await pilot.pause()
        assert len(seeded.pipelines.list_runs()) == 3
        await pilot.press("n")
        await pilot.pause()
        app.screen.query_one("#params", Input).value = '{"n": 9}'
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: len(seeded.pipelines.list_runs()) == 4)
        new = seeded.pipelines.list_runs()[0]
        assert new.trigger == "tui" and new.params == {"n": 9, "scale": 2.0}
        assert seeded.pipelines.wait(new.id, timeout_s=30, drive=False).state == "succeeded"
        # a refused start is named, nothing else changes
        await pilot.press("n")
        await pilot.pause()
        app.screen.query_one("#params", Input).value = '{"nope": 1}'
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        assert len(seeded.pipelines.list_runs()) == 4


async def test_triggers_are_shown_in_place_of_the_dag(seeded: Services, tmp_path: Path) -> None:
    seeded.pipelines.add_schedule("tests.test_pipelines_defs:daily", "cron", "0 3 * * *")
    seeded.pipelines.add_schedule("tests.test_pipelines_defs:on_dataset", "dataset", "ingest/[raw]")
    app = app_for(seeded)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_pipelines(pilot)
        screen = app.screen
        assert isinstance(screen, PipelinesScreen)
        await pilot.press("t")
        await settle(pilot)
        text = dag(app)
        assert "#1 cron (UTC) 0 3 * * * → tests.test_pipelines_defs:daily · catch-up latest" in text
        assert "#2 dataset changes: ingest/[raw] → tests.test_pipelines_defs:on_dataset" in text  # literal
        assert "\\x0a" not in text and len(text.splitlines()) == 2
        assert screen.query_one("#dag-box").border_title == "triggers · 2"
        await pilot.press("t")
        await settle(pilot)
        assert "│summarize" in dag(app)
        assert {"Start pipeline run", "Pipeline triggers"} <= {
            c.title for c in app.get_system_commands(screen)
        }


def _svg_text(svg: str) -> str:
    return "\n".join(html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", svg))


class TestPipelinesScreen:
    def test_wide(self, seeded: Services, utc: None, snap_compare: Snap) -> None:
        assert snap_compare(app_for(seeded), terminal_size=(160, 48), run_before=open_pipelines)

    def test_narrow(self, seeded: Services, utc: None, snap_compare: Snap) -> None:
        assert snap_compare(app_for(seeded), terminal_size=(100, 30), run_before=open_pipelines)

    def test_triggers(self, seeded: Services, utc: None, snap_compare: Snap) -> None:
        seeded.pipelines.add_schedule("tests.test_pipelines_defs:daily", "cron", "0 3 * * *", now=T0)
        seeded.pipelines.add_schedule("tests.test_pipelines_defs:on_dataset", "dataset", "ingest/raw", now=T0)

        async def run_before(pilot: Pilot[None]) -> None:
            await open_pipelines(pilot)
            await pilot.press("t")
            await settle(pilot)

        assert snap_compare(app_for(seeded), terminal_size=(100, 30), run_before=run_before)

    def test_run_prompt(self, seeded: Services, utc: None, snap_compare: Snap) -> None:
        async def run_before(pilot: Pilot[None]) -> None:
            await open_pipelines(pilot)
            await pilot.press("n")
            await settle(pilot)

        assert snap_compare(app_for(seeded), terminal_size=(100, 30), run_before=run_before)
