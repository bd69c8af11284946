"""How fast the runs table opens over many runs (the issue's target: 10,000 runs in under 1 s).

`seed_runs` fills a home through the tracking service (in large transactions,
so 10,000 runs take seconds, not minutes); `time_open_runs_table` starts the
app headless and times from start until the first page of runs is on screen.
The benchmark script and a test call both.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from textual import events
from textual.app import App

from mlbox.services import Services
from mlbox.tracking.series import Chunk
from mlbox.tracking.service import TrackingService

BATCH = 500


def seed_runs(tracking: TrackingService, n: int, *, start: float = 1_700_000_000.0) -> None:
    """``n`` finished runs over two experiments, each with 3 params and 3 one-point metrics."""
    done = 0
    while done < n:
        with tracking.db.atomic():
            for i in range(done, min(n, done + BATCH)):
                t = start + i * 60
                run = tracking.create_run("bench-a" if i % 2 else "bench-b", now=t)
                tracking.log_params(run.id, {"lr": 10 ** -(1 + i % 4), "layers": 1 + i % 5, "seed": i})
                series = {}
                for key, value in (("loss", 1 / (1 + i)), ("val_acc", (i % 1000) / 1000), ("acc", 0.5)):
                    chunk = Chunk()
                    chunk.append(0, t, value)
                    series[key] = chunk
                tracking.log_metrics(run.id, series, now=t + 30)
                tracking.end_run(run.id, now=t + 30)
        done = min(n, done + BATCH)


async def time_open_runs_table(
    services: Services, *, size: tuple[int, int] = (120, 40), timeout_s: float = 30.0
) -> float:
    """Seconds from creating the app until the runs table shows its first page of rows."""
    from mlbox.tui.app import make_app
    from mlbox.tui.widgets.runs_table import RunsTable

    t0 = time.perf_counter()
    app = make_app(services, home="bench", refresh_s=3600)
    async with app.run_test(size=size) as pilot:
        table = app.screen.query_one(RunsTable)
        while table.row_count == 0:
            if time.perf_counter() - t0 > timeout_s:
                raise TimeoutError("the runs table did not fill")
            await asyncio.sleep(0.002)
        await pilot.pause()  # one refresh: the rows are laid out and painted
        elapsed = time.perf_counter() - t0
        await app.workers.wait_for_complete()
    return elapsed


METRICS = 20
POINTS = 5


def seed_wide_runs(
    tracking: TrackingService,
    n: int,
    *,
    metrics: int = METRICS,
    points: int = POINTS,
    start: float = 1_700_000_000.0,
) -> None:
    """``n`` finished runs over four experiments, each with 4 params and ``metrics`` metric keys
    of ``points`` steps: the home of the key-press benchmark (issue 18: 10,000 runs x 20 metrics)."""
    done = 0
    while done < n:
        with tracking.db.atomic():
            for i in range(done, min(n, done + BATCH)):
                t = start + i * 60
                run = tracking.create_run(f"bench-{'abcd'[i % 4]}", now=t)
                tracking.log_params(
                    run.id,
                    {"lr": 10 ** -(1 + i % 4), "layers": 1 + i % 5, "seed": i, "dropout": (i % 7) / 10},
                )
                series = {}
                for k in range(metrics):
                    chunk = Chunk()
                    for step in range(points):
                        chunk.append(step, t + step, ((i * 7 + k * 13 + step) % 1000) / 1000)
                    series[f"m{k:02d}"] = chunk
                tracking.log_metrics(run.id, series, now=t + points)
                tracking.end_run(run.id, now=t + points)
        done = min(n, done + BATCH)


class AnswerClock:
    """The app's own answer time to a key: from the key event reaching the app (its ``on_event``)
    until the first frame the app draws (``App._display``, called by a screen's compositor
    refresh) once the answer is there (the ``answered`` condition holds while it draws); a key
    that changes nothing on screen is answered when the app has handled its event.

    Pilot's wall time adds its own waiting on top (it polls for idleness in 1/50 s sleeps and
    walks the screen's widgets, about 86 ms of wall for an unbound key with 7 ms of CPU), so
    this is the figure to hold against "within 100 ms". Headless, a frame is composed but not
    written to a terminal: a real one adds writing the changed lines.
    """

    def __init__(self, app: App[Any]) -> None:
        self.answered: Callable[[], bool] | None = None
        self.pressed: float | None = None
        self.handled: float | None = None
        self.drawn: float | None = None
        on_event, display = app.on_event, app._display

        async def timed_event(event: events.Event) -> None:
            if self.answered is not None and self.pressed is None and isinstance(event, events.Key):
                self.pressed = time.perf_counter()
            await on_event(event)
            if self.pressed is not None and self.handled is None:
                self.handled = time.perf_counter()

        def timed_display(screen: Any, renderable: Any) -> None:
            display(screen, renderable)
            if (
                self.pressed is not None
                and self.drawn is None
                and renderable is not None
                and self.answered is not None
                and self.answered()
            ):
                self.drawn = time.perf_counter()

        app.on_event = timed_event  # type: ignore[method-assign]
        app._display = timed_display  # type: ignore[method-assign]

    def arm(self, answered: Callable[[], bool]) -> None:
        """Time the next key press, answered when ``answered()`` holds."""
        self.answered, self.pressed, self.handled, self.drawn = answered, None, None, None

    def disarm(self) -> float:
        """Seconds from the key reaching the app to its answer's first frame (or its handling)."""
        if self.pressed is None:
            raise RuntimeError("no key event reached the app")
        end = self.drawn if self.drawn is not None else self.handled
        self.answered = None
        return (end if end is not None else time.perf_counter()) - self.pressed


class GcClock:
    """Every garbage collection in the process while installed (`gc.callbacks`): its generation,
    milliseconds and where it began: ``"press"`` (while `inside` is set: a timed key press),
    ``"idle"`` (while ``idle()`` holds: the idle collector's), ``"idle in press"`` (both: the
    idle collector began between the press and its key event reaching the app) or
    ``"outside"``."""

    def __init__(self, idle: Callable[[], bool] = lambda: False) -> None:
        self.collections: list[tuple[int, float, str]] = []
        """(generation, ms, where), in order."""
        self.inside = False
        self._idle = idle
        self._started: float | None = None
        self._where = "outside"

    async def __aenter__(self) -> GcClock:
        """Installed (async, to sit beside Pilot's ``async with``)."""
        gc.callbacks.append(self._on_gc)
        return self

    async def __aexit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            idle = self._idle()
            self._where = (
                ("idle in press" if idle else "press") if self.inside else "idle" if idle else "outside"
            )
            self._started = time.perf_counter()
        elif self._started is not None:
            ms = (time.perf_counter() - self._started) * 1000
            self.collections.append((info["generation"], ms, self._where))
            self._started = None

    def full_ms(self, since: int) -> float:
        """Milliseconds of full (generation-2) collections since ``collections[since]``."""
        return sum(ms for gen, ms, _ in self.collections[since:] if gen == 2)

    def full(self, where: str) -> list[float]:
        """Each full collection's milliseconds that began ``where``."""
        return [ms for gen, ms, at in self.collections if gen == 2 and at == where]


CLOCKS = ("cpu:", "app:", "gc2:", "gc:")
"""Prefixes of `time_key_presses`' figures that are not a key's Pilot time."""


def prebuilt_drawn(app: App[Any]) -> bool:
    """Whether the run detail screen built ahead (`RunDetailScreen.prebuild`) is drawn."""
    from mlbox.tui.screens.run_detail import REUSED
    from mlbox.tui.widgets.metric_plot import MetricPlot

    if not app.is_screen_installed(REUSED):
        return False
    screen = app.get_screen(REUSED)
    return screen.is_mounted and bool(screen.query(MetricPlot)) and bool(screen.query_one(MetricPlot).drawn)


def key_names(figures: dict[str, list[float]]) -> list[str]:
    """The keys timed, in order, from `time_key_presses`' figures."""
    return [k for k in figures if not k.startswith(CLOCKS)]


async def time_key_presses(
    services: Services,
    *,
    repeats: int = 5,
    size: tuple[int, int] = (160, 48),
    timeout_s: float = 30.0,
    around: Callable[[str], AbstractContextManager[object]] | None = None,
    pause_s: float = 0.0,
    idle_s: float | None = None,
) -> dict[str, list[float]]:
    """Milliseconds from each key press until the screen shows its answer, ``repeats`` times each;
    under ``cpu:<name>`` the CPU time this process spent meanwhile (all threads), a figure a
    busy machine inflates far less than the wall-clock one; under ``app:<name>`` the app's own
    answer time (`AnswerClock`), without what Pilot adds; under ``gc2:<name>`` the milliseconds
    of full garbage collections inside each press (0 for none). ``gc:press``, ``gc:outside``,
    ``gc:idle`` and ``gc:idle in press`` hold every full collection's ms: Python's own inside
    the timed presses and outside them, the idle collector's (`mlbox.tui.idle_gc`) outside
    and inside them. ``around(name)``
    wraps each timed press (a profiler). ``pause_s`` waits before each timed press, as a person
    reading the screen does (0: back to back, as Pilot presses); ``idle_s`` replaces the idle
    collector's wait (`mlbox.tui.idle_gc.IDLE_S`).

    "Answered" is what the user waits for: the fetch the key started has
    landed in the table (filter, sort, experiment), the new screen is up
    (screen change, dialog, run detail with its curve), the plot redrawn.
    """
    from textual.widgets import Input

    from mlbox.tui.app import make_app
    from mlbox.tui.screens.experiments import ExperimentsScreen
    from mlbox.tui.screens.run_detail import RunDetailScreen
    from mlbox.tui.widgets.column_chooser import ColumnChooser
    from mlbox.tui.widgets.experiments_list import ExperimentsList
    from mlbox.tui.widgets.help_overlay import HelpOverlay
    from mlbox.tui.widgets.metric_plot import MetricPlot
    from mlbox.tui.widgets.runs_table import RunsTable
    from mlbox.tui.widgets.sort_picker import SortPicker

    figures: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    own: dict[str, list[float]] = {}
    full: dict[str, list[float]] = {}
    app = make_app(services, home="bench", refresh_s=3600, live_s=3600)
    clock = AnswerClock(app)
    if idle_s is not None:
        app.idle_gc.idle_s = idle_s
    collections = GcClock(lambda: app.idle_gc.collecting)
    async with app.run_test(size=size) as pilot, collections:

        async def until(condition: Callable[[], bool]) -> None:
            t0 = time.perf_counter()
            while not condition():
                if time.perf_counter() - t0 > timeout_s:
                    rows = table.row_count if table.is_attached else None
                    raise TimeoutError(
                        f"no answer: {app.screen!r} showing, {app.focused!r} focused, {rows} rows"
                    )
                await asyncio.sleep(0.005)

        async def timed(name: str, keys: tuple[str, ...], answered: Callable[[], bool]) -> None:
            if pause_s:
                await asyncio.sleep(pause_s)
            with around(name) if around is not None else nullcontext():
                clock.arm(answered)
                since = len(collections.collections)
                collections.inside = True
                t0, c0 = time.perf_counter(), time.process_time()
                await pilot.press(*keys)
                await until(answered)
                await pilot.pause()  # painted
                figures.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
                cpu.setdefault(name, []).append((time.process_time() - c0) * 1000)
                collections.inside = False
                full.setdefault(name, []).append(collections.full_ms(since))
                own.setdefault(name, []).append(clock.disarm() * 1000)

        assert isinstance(app.screen, ExperimentsScreen)
        screen: ExperimentsScreen = app.screen
        table = screen.query_one(RunsTable)

        def fetched() -> Callable[[], bool]:
            """Answered: the runs the key asked for (a new question, not the last one) are shown."""
            asked = screen.generation
            return lambda: screen.generation != asked and not screen.reading

        def redrawn(plot: MetricPlot, option: str | None) -> Callable[[], bool]:
            """Answered: the plot's ``option`` (any, for None) differs from now."""
            before = plot.options
            if option is None:
                return lambda: plot.options != before
            return lambda: bool(getattr(plot.options, option) != getattr(before, option))

        await until(lambda: table.row_count > 0 and not screen.reading)
        await app.workers.wait_for_complete()
        # as a person reads the first screen before typing: what the app builds ahead once the
        # input pauses (`RunDetailScreen.prebuild`, `MlboxApp.build_ahead`) is ready before the
        # first press
        await until(lambda: prebuilt_drawn(app) and app.settled)
        filters = (
            "metrics.m03 > 0.5",
            "params.lr = '0.01'",
            "metrics.m07 < 0.2 and params.layers = '3'",
            "",
        )
        for r in range(repeats):
            await timed("unbound key (Pilot's floor)", ("f12",), lambda: True)
            await pilot.press("slash")
            screen.query_one("#filter", Input).value = filters[r % len(filters)]
            await timed("filter (enter)", ("enter",), fetched())
            await timed("sort picker (s)", ("s",), lambda: isinstance(app.screen, SortPicker))
            await timed("sort (d)", ("d",), fetched())
            await timed("reverse sort (S)", ("S",), fetched())
            sidebar = screen.query_one(ExperimentsList)
            await pilot.press("e")
            sidebar.highlighted = 1 + r % 4
            await timed("choose experiment (enter)", ("enter",), fetched())
            await timed("column chooser (v)", ("v",), lambda: isinstance(app.screen, ColumnChooser))
            await timed(
                "close chooser (esc)", ("escape",), lambda: app.screen is screen and not screen.reading
            )
            await timed("help overlay (?)", ("question_mark",), lambda: isinstance(app.screen, HelpOverlay))
            await pilot.press("escape")
            await timed("screen change (2)", ("2",), lambda: app.screen is not screen)
            await timed("screen change back (1)", ("1",), lambda: app.screen is screen)
            await app.workers.wait_for_complete()
            if table.row_count == 0:  # this round's experiment and filter match no run: show all
                await pilot.press("slash")
                screen.query_one("#filter", Input).value = ""
                await pilot.press("enter")
                await until(lambda: not screen.reading and table.row_count > 0)
            await timed(
                "open run detail (enter)",
                ("enter",),
                lambda: (
                    isinstance(app.screen, RunDetailScreen) and bool(app.screen.query_one(MetricPlot).drawn)
                ),
            )
            plot = app.screen.query_one(MetricPlot)
            await timed("chart redraw: smoothing (])", ("right_square_bracket",), redrawn(plot, None))
            await timed("chart redraw: x axis (x)", ("x",), redrawn(plot, "x"))
            await timed("chart redraw: log y (l)", ("l",), redrawn(plot, "log_y"))
            await timed("back to runs (esc)", ("escape",), lambda: app.screen is screen)
            await app.workers.wait_for_complete()
        await app.workers.wait_for_complete()
    figures.update({f"cpu:{k}": v for k, v in cpu.items()})
    figures.update({f"app:{k}": v for k, v in own.items()})
    figures.update({f"gc2:{k}": v for k, v in full.items()})
    for where in ("press", "outside", "idle", "idle in press"):
        figures[f"gc:{where}"] = collections.full(where)
    return figures
