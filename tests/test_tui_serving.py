"""The Serving screen over a real `ServingService` scoring real scikit-learn models.

The embedded case hands the app a small appliance holding a real serving
service (no HTTP: the screen reads the service); predictions go through the
service's Python scoring call. The beside case runs a real `Appliance` on a
loopback port and reads its ``/metrics``. Rates and histogram parsing are
checked as pure functions against the real `ModelStats` exposition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from mlbox.appliance import Appliance
from mlbox.services import Services
from mlbox.serving.config import ServingSettings
from mlbox.serving.errors import Overloaded
from mlbox.serving.metrics import SHED_METRIC, ModelStats, StatsSnapshot, render
from mlbox.serving.predlog import PredictionLog
from mlbox.serving.service import ServingService
from mlbox.serving.tensors import Payload
from mlbox.store.errors import MlboxError
from mlbox.tui.app import MlboxApp
from mlbox.tui.screens.serving import NO_APPLIANCE, ServingScreen
from mlbox.tui.views.serving import Sample, parse_metrics, parse_shed, request_rates, served_rows, shed_note
from tests.test_tui import app_for, settle, until

SIZE = (120, 30)
Snap = Callable[..., bool]
FAST = ServingSettings(poll_s=0.05, timeout_s=10.0, log_flush_s=0.05)


def _snap(model: str = "m", version: int = 1, requests: int = 0, **kw: Any) -> StatsSnapshot:
    base: dict[str, Any] = dict(errors=0, rows=0, batches=0, queue_depth=0, p50_ms=None, p99_ms=None)
    base.update(kw)
    return StatsSnapshot(model, version, requests, **base)


# -- pure functions -------------------------------------------------------------------------------


def test_request_rates_difference_the_oldest_sample_in_the_window() -> None:
    s0 = Sample(0.0, (_snap(requests=0),))
    s1 = Sample(4.0, (_snap(requests=40), _snap("n", 2, 3)))
    s2 = Sample(8.0, (_snap(requests=100), _snap("n", 2, 7)))
    assert request_rates([s0]) == {}
    assert request_rates([s0, s1]) == {("m", 1): 10.0, ("n", 2): 0.75}  # n is new: counts from 0
    # s0 is outside the 5 s window: the baseline is s1
    assert request_rates([s0, s1, s2]) == {("m", 1): 15.0, ("n", 2): 1.0}
    assert request_rates([s0, s1, s2], window_s=10) == {("m", 1): 12.5, ("n", 2): 7 / 8}
    # a restarted appliance: counters went down, the new total counts from zero
    restarted = Sample(10.0, (_snap(requests=4), _snap("n", 2, 7)))
    assert request_rates([s2, restarted]) == {("m", 1): 2.0, ("n", 2): 0.0}
    assert request_rates([s2, Sample(8.0, s2.stats)]) == {}


def test_served_rows_name_routes_shadows_and_retired_versions() -> None:
    stats = [
        _snap("m", 1, 10, rows=30, batches=6),
        _snap("m", 2, 5, errors=1),
        _snap("m", 3, 0),
        _snap("a", 1, 0),
    ]
    routes = {"m@champion": ("m", 1), "m@challenger": ("m", 2), "m/1": ("m", 1), "a": ("a", 1)}
    rows = served_rows(stats, routes, {("m", 1): 2.5})
    assert [(r.model, r.version, r.aliases, r.shadow) for r in rows] == [
        ("a", 1, ("latest",), False),
        ("m", 2, ("challenger",), True),
        ("m", 1, ("champion", "v1"), False),
        ("m", 3, (), False),  # retired: stats kept, nothing routes to it
    ]
    m1 = rows[2]
    assert (m1.rate, m1.requests, m1.batch_avg) == (2.5, 10, 5.0)
    assert rows[1].rate is None and rows[1].errors == 1 and rows[1].batch_avg is None
    assert not any(r.shadow for r in served_rows(stats, routes, {}, shadow=False))
    same = {"m@champion": ("m", 1), "m@challenger": ("m", 1)}
    assert not any(r.shadow for r in served_rows(stats, same, {}))


def test_parse_metrics_reads_the_real_exposition() -> None:
    stats = ModelStats('odd "name"', 3, queue_depth=lambda: 4)
    for i in range(100):
        stats.request(200, 0.002 if i < 90 else 0.2, rows=2)
    stats.request(422, 0.001)
    stats.request(503, 0.001)
    for _ in range(20):
        stats.batch(10, 0.001)
    other = ModelStats("idle", 1)
    (parsed_idle, parsed) = parse_metrics(render([stats, other], {"mlbox_serving_models_loaded": 2.0}))
    assert parsed_idle == _snap("idle", 1)
    assert parsed == StatsSnapshot(
        model='odd "name"',
        version=3,
        requests=102,
        errors=2,
        rows=200,
        batches=20,
        queue_depth=4,
        p50_ms=2.5,  # the bucket bounds holding the quantiles
        p99_ms=250.0,
    )
    assert parse_metrics('garbage\n# HELP x\nmlbox_serving_rows_total{model="m"} 3\n') == []


def test_refused_requests_are_read_from_the_metrics_and_said_once_counted() -> None:
    text = render([ModelStats("m", 1)], {"mlbox_serving_models_loaded": 1.0, SHED_METRIC: 12.0})
    assert parse_shed(text) == 12
    assert parse_shed(render([ModelStats("m", 1)], {})) is None  # an appliance that does not say
    assert shed_note(None, None) == shed_note(0, 0) == ""
    assert shed_note(12, 12) == " · 12 refused with 503"
    assert shed_note(1200, 12) == " · 1,200 refused with 503 (refusing now)"


# -- the screen -----------------------------------------------------------------------------------


class ServingAppliance:
    """A real serving service as the TUI's embedded appliance, without HTTP (the screen reads the
    service itself); ``url`` is what the status bar shows."""

    url: str | None = "http://127.0.0.1:5151"

    def __init__(self, services: Services, home: Path) -> None:
        self.serving = ServingService(
            services.registry, FAST, PredictionLog(home / "tables" / "predictions", flush_s=0.05)
        )

    def start_loops(self) -> None:
        self.serving.start()
        assert self.serving.wait_ready(30)

    def start_http(self) -> str:
        assert self.url is not None
        return self.url

    def stop(self) -> None:
        self.serving.close()


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 4))
    return x, (x[:, 0] > 0).astype(np.int64)


@pytest.fixture
def registered(services: Services) -> Services:
    """``clf`` versions 1 (champion) and 2 (challenger)."""
    x, y = _data()
    for c in (1.0, 0.1):
        services.registry.register("clf", model=LogisticRegression(C=c).fit(x, y), example_input=x[:2])
    services.registry.set_alias("clf", "champion", 1)
    services.registry.set_alias("clf", "challenger", 2)
    return services


def rows(screen: ServingScreen) -> list[list[str]]:
    table = screen.query_one("#served", DataTable)
    return [[str(c) for c in table.get_row(k)] for k in table.rows]


async def open_serving(pilot: Pilot[None]) -> ServingScreen:
    await settle(pilot)
    await pilot.press("3")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ServingScreen)
    return screen


def summary(screen: ServingScreen) -> str:
    return str(screen.query_one("#summary", Static).render())


async def test_live_requests_rates_and_shadow(registered: Services, home: Path) -> None:
    appliance = ServingAppliance(registered, home)
    app = app_for(registered, appliance=appliance, live_s=0.1)
    x, _ = _data()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_serving(pilot)
        await until(pilot, lambda: len(rows(screen)) == 2, lambda: rows(screen))
        assert [r[:3] + r[4:6] + r[10:] for r in rows(screen)] == [
            ["clf", "2", "challenger", "0", "0", "yes 0"],
            ["clf", "1", "champion", "0", "0", "no"],
        ]
        for i in range(30):
            await appliance.serving.score("clf@champion", Payload("rows", x[i : i + 1]))
        with pytest.raises(MlboxError):  # a wrong shape: counted as an error
            await appliance.serving.score("clf@champion", Payload("rows", np.zeros((1, 3))))

        def champion() -> list[str]:
            return next(r for r in rows(screen) if r[2] == "champion")

        await until(pilot, lambda: champion()[4] == "31", lambda: rows(screen))
        # the 30 good requests were mirrored to the challenger (the bad one failed before that)
        await until(pilot, lambda: rows(screen)[0][10] == "yes 30", lambda: rows(screen))
        row = champion()
        assert row[5] == "1"  # errors
        assert float(row[3]) > 0  # req/s
        assert float(row[6]) > 0 and float(row[7]) >= float(row[6])  # p50, p99 ms
        assert float(row[8]) >= 1  # rows per model call
        assert "embedded appliance" in summary(screen) and "2 versions served" in summary(screen)
        assert "refused" not in summary(screen)
        # the rate falls back to zero once requests stop (window of 5 s)
        screen.samples.clear()
        await until(pilot, lambda: champion()[3] == "0.0", lambda: rows(screen))
        # requests refused at the door (503) show in the summary, while it goes on and after
        admission = appliance.serving.admission
        admission.drain()
        for _ in range(3):
            with pytest.raises(Overloaded):
                admission.enter("clf@champion", 0.0)
        await until(pilot, lambda: "3 refused with 503" in summary(screen), lambda: summary(screen))


async def test_without_an_appliance_the_screen_says_so(registered: Services) -> None:
    app = app_for(registered)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_serving(pilot)
        assert summary(screen) == NO_APPLIANCE
        assert rows(screen) == []
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Go to Serving", "Refresh serving statistics"} <= titles


@pytest.fixture
def beside(registered: Services) -> Iterator[Appliance]:
    services = replace(registered, settings=replace(registered.settings, port=0))
    appliance = Appliance(services)
    appliance.start_loops()
    appliance.start_http()
    assert appliance.serving.wait_ready(30)
    yield appliance
    appliance.stop()


async def test_beside_an_appliance_reads_its_metrics(registered: Services, beside: Appliance) -> None:
    assert beside.url is not None
    x, _ = _data()
    for i in range(5):
        await beside.serving.score("clf@champion", Payload("rows", x[i : i + 1]))
    app = app_for(registered, beside_url=beside.url, live_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_serving(pilot)
        await until(pilot, lambda: len(rows(screen)) == 2, lambda: (rows(screen), summary(screen)))
        champion = next(r for r in rows(screen) if r[2] == "champion")
        assert champion[:2] == ["clf", "1"] and champion[4] == "5"
        assert champion[6] != "–"  # p50 from the histogram's buckets
        assert "appliance beside (/metrics)" in summary(screen)


async def test_an_unreachable_appliance_beside_is_reported(registered: Services) -> None:
    app = app_for(registered, beside_url="http://127.0.0.1:9")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_serving(pilot)
        await until(pilot, lambda: "could not read" in summary(screen), lambda: summary(screen))
        assert "http://127.0.0.1:9/metrics" in summary(screen)


class TestServingScreen:
    def test_idle_service(self, registered: Services, home: Path, snap_compare: Snap) -> None:
        app: MlboxApp = app_for(registered, appliance=ServingAppliance(registered, home), live_s=3600)

        async def run_before(pilot: Pilot[None]) -> None:
            screen = await open_serving(pilot)
            await until(pilot, lambda: len(rows(screen)) == 2, lambda: rows(screen))
            await settle(pilot)

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
