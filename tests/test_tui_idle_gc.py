"""Full garbage collections wait for the user to be idle (issue 18, `mlbox.tui.idle_gc`): none
while keys are being pressed, one once the keys stop, and only when Python's counters say a
full collection is near."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mlbox.services import Services
from mlbox.tui.app import MlboxApp
from mlbox.tui.idle_gc import EVERY_S, IdleCollector, full_collection_near
from mlbox.tui.navigation import SECTIONS
from mlbox.tui.screens.experiments import PREBUILD_S
from mlbox.tui.screens.models import ModelsScreen
from mlbox.tui.screens.run_detail import REUSED, RunDetailScreen
from mlbox.tui.screens.serving import ServingScreen
from mlbox.tui.widgets.metric_plot import MetricPlot
from tests.test_tui import app_for, seeded, settle, until

__all__ = ["seeded"]  # a fixture

IDLE_S = 0.3
"""Shorter than the app's, to keep the test fast; the logic is the same."""


def test_near_follows_pythons_own_counters() -> None:
    assert not full_collection_near((500, 3, 4), (700, 10, 10))
    assert full_collection_near((0, 0, 5), (700, 10, 10))
    assert full_collection_near((0, 0, 1), (700, 10, 1))
    assert not full_collection_near((0, 0, 9), (0, 10, 10))  # the collector turned off


def bring_near() -> list[list[object]]:
    """Allocate (and keep) containers until Python's counters say a full collection is near."""
    kept: list[list[object]] = []
    while not full_collection_near(gc.get_count(), gc.get_threshold()):
        kept.extend([] for _ in range(1000))
    return kept


async def test_no_idle_collection_while_keys_are_pressed_then_one(services: Services) -> None:
    app: MlboxApp = app_for(services)
    app.idle_gc.idle_s = IDLE_S
    async with app.run_test() as pilot:
        await pilot.app.workers.wait_for_complete()
        start = app.idle_gc.runs
        kept = bring_near()
        pressing_until = time.monotonic() + 3 * IDLE_S
        while time.monotonic() < pressing_until:  # faster than one key per IDLE_S
            await pilot.press("f12")  # bound to nothing: handled, answers nothing
            await pilot.pause(IDLE_S / 4)
            kept.extend(bring_near())  # near all along
        assert app.idle_gc.runs == start
        stopped = time.monotonic()
        while app.idle_gc.runs == start:  # near again if Python's own full collection came first
            assert time.monotonic() - stopped < 10 * IDLE_S, (gc.get_count(), app.idle_gc.runs)
            kept.extend(bring_near())
            await pilot.pause(IDLE_S / 4)
        assert app.idle_gc.runs == start + 1
        del kept


def test_idle_collector_waits_for_idle_and_near_and_spacing() -> None:
    now = [100.0]
    collector = IdleCollector(idle_s=1.0, clock=lambda: now[0])
    kept = bring_near()
    assert not collector.tick()  # input (or start) less than idle_s ago
    collector.input_started()
    now[0] += 5
    assert not collector.tick()  # a key still being handled
    collector.input_ended()
    now[0] += 1
    assert not collector.tick(waiting=1)  # a key sent, not yet taken by the app
    assert collector.tick() and collector.runs == 1
    kept.extend(bring_near())
    now[0] += EVERY_S / 2
    assert not collector.tick()  # collected lately
    now[0] += EVERY_S
    assert collector.tick() and collector.runs == 2
    now[0] += EVERY_S
    assert not collector.tick()  # idle, but no full collection near (just collected)
    del kept


def test_deferred_work_waits_for_idle_runs_in_order_one_a_tick_after_a_collection() -> None:
    now = [100.0]
    collector = IdleCollector(idle_s=1.0, clock=lambda: now[0])
    done: list[str] = []
    collector.defer(lambda: done.append("a"))
    collector.defer(lambda: done.append("b"))
    kept = bring_near()
    collector.tick()
    assert done == []  # input (or start) less than idle_s ago
    now[0] += 1
    assert not collector.tick(waiting=1) and done == []  # a key sent, not yet taken
    collector.input_started()
    now[0] += 5
    collector.tick()
    assert done == []  # a key still being handled
    collector.input_ended()
    now[0] += 1
    assert collector.tick() and done == [] and collector.runs == 1  # the collection that was due first
    assert not collector.tick() and done == ["a"]
    assert not collector.tick() and done == ["a", "b"] and collector.runs == 1
    del kept


async def test_the_run_detail_is_prebuilt_once_the_keys_pause_not_while_typing(seeded: Services) -> None:
    """Building the run detail ahead (`RunDetailScreen.prebuild`, 100-200 ms of CPU) waits for a
    pause in the input: on a fixed timer it fell inside a key press."""
    app: MlboxApp = app_for(seeded, live_s=3600)
    app.idle_gc.idle_s = IDLE_S
    async with app.run_test() as pilot:
        await settle(pilot)
        typing_until = time.monotonic() + PREBUILD_S + 4 * IDLE_S
        while time.monotonic() < typing_until:  # faster than one key per IDLE_S
            await pilot.press("f12")
            await pilot.pause(IDLE_S / 4)
        assert not app.is_screen_installed(REUSED)
        await until(pilot, lambda: app.is_screen_installed(REUSED))
        prebuilt = app.get_screen(REUSED)
        assert isinstance(prebuilt, RunDetailScreen)
        await until(pilot, lambda: bool(prebuilt.is_mounted and prebuilt.query_one(MetricPlot).drawn))


async def test_every_section_is_built_ahead_off_screen_then_shown_as_built(seeded: Services) -> None:
    """Once the input pauses, each section's screen is built and drawn off screen
    (`MlboxApp.build_ahead`), and then frozen out of the collector's view; the screen showing
    and its focus stay as they were, and a section's first visit shows the screen built ahead
    without Textual's hold for a screen being built."""
    app: MlboxApp = app_for(seeded, build_ahead=True)
    app.idle_gc.idle_s = IDLE_S
    async with app.run_test() as pilot:
        await settle(pilot)
        first, focused = app.screen, app.focused
        await until(pilot, lambda: app.settled, lambda: (list(app._screen_stacks), app.idle_gc.pending))
        assert [s.mode for s in SECTIONS if s.mode in app._screen_stacks] == [s.mode for s in SECTIONS]
        assert app.screen is first and app.focused is focused
        models = app._screen_stacks[SECTIONS[1].mode][0]
        assert isinstance(models, ModelsScreen)
        assert not any(o is models for o in gc.get_objects())  # frozen: in no generation
        assert models.is_mounted and not models.is_current
        serving = next(
            stack[0] for stack in app._screen_stacks.values() if isinstance(stack[0], ServingScreen)
        )
        assert serving.sampler is None  # nothing read for a section not shown yet
        x, y = load_iris(return_X_y=True)
        seeded.registry.register(
            "late", model=LogisticRegression(max_iter=200).fit(x, y), example_input=x[:2]
        )
        app.switch_mode(SECTIONS[1].mode)
        assert app._batch_count == 0  # no hold: built
        await settle(pilot)
        assert app.screen is models and models.is_current
        await until(pilot, lambda: models.models_table.row_count == 1)  # read as it shows: the model made since
        app.switch_mode(serving.SECTION)
        await settle(pilot)
        assert serving.sampler is not None


@pytest.mark.parametrize("turns", [0, 1, 3])
async def test_an_app_closing_while_sections_are_built_ahead_closes_cleanly(
    seeded: Services, turns: int
) -> None:
    app: MlboxApp = app_for(seeded, build_ahead=True)
    async with app.run_test() as pilot:
        await settle(pilot)
        app.build_ahead()
        for _ in range(2):
            app.idle_gc._deferred.popleft()()  # two sections' builds begun at once
        for _ in range(turns):
            await asyncio.sleep(0)
    assert app.return_code in (0, None)
