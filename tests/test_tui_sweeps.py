"""The Sweeps view over a real sweep: trials run as real jobs on two simulated GPUs, log their
metric through tracking, and the median pruner stops a bad one.

The sweep is driven to its end before the app opens (a scheduler pass then a
sweep pass, as the appliance's loop does), so the view shows a finished
sweep: a complete trial marked best and a pruned one whose curve ends where
it was stopped. Pure parts are checked on fixed values.
"""

from __future__ import annotations

import html
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from mlbox.services import Services
from mlbox.sweeps.schemas import SweepSpec, Trial
from mlbox.tui.screens.run_detail import RunDetailScreen
from mlbox.tui.screens.sweeps import SweepsScreen
from mlbox.tui.views.sweeps import (
    parallel_lines,
    param_importances,
    param_points,
    params_text,
    trial_curves,
    trial_rows,
)
from mlbox.tui.widgets.help_overlay import HelpOverlay
from mlbox.tui.widgets.sweep_analysis import SweepAnalysis
from mlbox.tui.widgets.trial_curves import TrialCurves
from tests.test_tui import app_for, settle, until

SIZE = (120, 36)
# Logs `loss` per step; trial 1 and later run long and badly (the median pruner stops them).
TRIAL = """\
import os, time
import mlbox

p = mlbox.trial_params()
bad = int(os.environ["MLBOX_TRIAL_NUMBER"]) >= 1
with mlbox.start_run(log_code=False, log_environment=False):
    for step in range(400 if bad else 4):
        floor = 100.0 if bad else (p["x"] - 0.25) ** 2
        mlbox.log_metric("loss", floor + 1.0 / (step + 1), step=step)
        mlbox.flush()
        time.sleep(0.05 if bad else 0.1)
"""


@pytest.fixture
def finished_sweep(gpu_services: Services, tmp_path: Path) -> int:
    """Sweep 1: trial 0 complete, trial 1 pruned (its job cancelled)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "trial.py").write_text(TRIAL)
    svc = gpu_services
    sweep = svc.sweeps.create(
        SweepSpec(
            metric="loss",
            command=[sys.executable, "trial.py"],
            space={"x": {"type": "float", "low": 0.0, "high": 1.0}},
            name="x-search",
            n_trials=2,
            parallel=1,
            seed=3,
            pruner="median",
            pruner_args={"n_startup_trials": 1, "n_warmup_steps": 1},
            gpus_per_trial=1,
            workdir=str(work),
        )
    )
    deadline = time.monotonic() + 90
    while svc.sweeps.get(sweep.id).state in ("running", "stopping") or any(
        not svc.scheduler.get(t.job_id).terminal for t in svc.sweeps.trials(sweep.id) if t.job_id
    ):
        assert time.monotonic() < deadline, svc.sweeps.trials(sweep.id)
        svc.scheduler.reconcile_once()
        svc.sweeps.reconcile_once()
        time.sleep(0.05)
    return sweep.id


async def open_sweeps(pilot: Pilot[None]) -> SweepsScreen:
    await settle(pilot)
    await pilot.press("6")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, SweepsScreen)
    await until(pilot, lambda: not screen.reading and bool(screen.trials), lambda: screen.reading)
    return screen


def _trial(number: int, state: str, value: float | None, **params: object) -> Trial:
    return Trial(1, number, state, dict(params), value, number + 10, number + 20, 3, 0.0, None, None)  # type: ignore[arg-type]


def test_rows_and_curves_mark_best_and_pruned() -> None:
    trials = [
        _trial(0, "complete", 0.5, lr=0.001234567, opt="adam"),
        _trial(1, "pruned", 9.0),
        _trial(2, "running", None),
    ]
    rows = trial_rows(trials, best=0)
    assert [(r.number, r.best, r.value) for r in rows] == [(0, True, "0.5"), (1, False, "9"), (2, False, "-")]
    assert rows[0].params == "lr=0.001235 opt=adam"
    assert params_text({"name": "x" * 100}, width=10) == "name=xxxx…"
    curves = {0: [(0, 1.0), (1, 0.5)], 1: [(0, 10.0), (1, float("nan")), (2, 9.0)], 2: [], 7: [(0, 1.0)]}
    drawn = trial_curves(curves, trials, best=0, selected=None)
    # trial 2 reported nothing, trial 7 is unknown; the best is drawn last (on top)
    assert [(c.number, c.label) for c in drawn] == [(1, "t1 pruned@2"), (0, "t0 best")]
    assert drawn[0].steps == [0, 2]  # the NaN is left out
    many = {n: [(0, float(n))] for n in range(50)}
    states = [_trial(n, "complete", float(n)) for n in range(50)]
    kept = trial_curves(many, states, best=0, selected=5, limit=10)
    assert {c.number for c in kept} == {0, 5, *range(40, 50)}


async def test_finished_sweep_shows_best_and_pruned_trial(
    gpu_services: Services, finished_sweep: int, tmp_path: Path
) -> None:
    svc = gpu_services
    first, second = svc.sweeps.trials(finished_sweep)
    assert (first.state, second.state) == ("complete", "pruned")
    app = app_for(svc, live_s=3600)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_sweeps(pilot)
        sweeps = screen.sweeps_table
        assert sweeps.row_count == 1
        assert "x-search" in str(sweeps.get_cell("1", "name")) and "finished" in str(
            sweeps.get_cell("1", "state")
        )
        assert str(sweeps.get_cell("1", "done")) == "1✔ 1✂"
        assert str(sweeps.get_cell("1", "best")).endswith("(t0)")
        trials = screen.trials_table
        assert "★ 0" in str(trials.get_cell("0", "trial")) and "complete" in str(
            trials.get_cell("0", "state")
        )
        assert "pruned" in str(trials.get_cell("1", "state")) and "★" not in str(
            trials.get_cell("1", "trial")
        )
        await pilot.press("t", "down")
        assert str(trials.border_subtitle).startswith("trial 1 · pruned at step")
        assert "white: t1 pruned@" in str(screen.query_one(TrialCurves).border_subtitle)
        app.save_screenshot("sweeps.svg", str(tmp_path))  # for a person to look at (under pytest's tmp)
        await pilot.press("up")
        sweeps.focus()
        plot = screen.query_one(TrialCurves)
        labels = {c.number: c.label for c in plot.curves}
        assert labels[0] == "t0 best" and labels[1].startswith("t1 pruned@")
        assert plot.border_subtitle == "green: t0 best · red x: pruned (1)"
        pruned = next(c for c in plot.curves if c.number == 1)
        assert pruned.steps[-1] == second.last_step and len(pruned.steps) < 400
        # s on a finished sweep asks nothing
        await pilot.press("s")
        await settle(pilot)
        assert app.screen is screen
        # Enter: into the trials; Enter on a trial: its run
        await pilot.press("enter")
        await settle(pilot)
        assert trials.has_focus
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        run = app.screen
        assert isinstance(run, RunDetailScreen) and run.run_id == second.run_id


async def test_no_sweeps_says_how_to_start_one(gpu_services: Services) -> None:
    async with app_for(gpu_services).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, SweepsScreen)
        assert "mlbox sweep" in str(screen.query_one("#summary").render())
        assert screen.query_one(TrialCurves).curves == []


# -- analysis: importance, a parameter against the objective, parallel coordinates --------------

Snap = Callable[..., bool]
QUICK = """\
import mlbox

p = mlbox.trial_params()
with mlbox.start_run(log_code=False, log_environment=False):
    for step in range(3):
        loss = (p["x"] - 0.25) ** 2 + (0.5 if p["opt"] == "sgd" else 0.0) + 0.1 / (step + 1)
        mlbox.log_metric("loss", loss, step=step)
"""


def _svg_text(svg: str) -> str:
    return "\n".join(html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", svg)).replace(
        "\xa0", " "
    )


@pytest.fixture
def quick_sweep(gpu_services: Services, tmp_path: Path) -> int:
    """Sweep 1: four quick trials over a float and a categorical parameter, all complete."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "trial.py").write_text(QUICK)
    svc = gpu_services
    sweep = svc.sweeps.create(
        SweepSpec(
            metric="loss",
            command=[sys.executable, "trial.py"],
            space={
                "x": {"type": "float", "low": 0.0, "high": 1.0},
                "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
            },
            name="two-params",
            n_trials=4,
            parallel=4,
            seed=7,
            sampler="random",
            workdir=str(work),
        ),
        now=1_790_000_000.0,
    )
    deadline = time.monotonic() + 90
    while svc.sweeps.get(sweep.id).state in ("running", "stopping"):
        assert time.monotonic() < deadline, svc.sweeps.trials(sweep.id)
        svc.scheduler.reconcile_once()
        svc.sweeps.reconcile_once()
        time.sleep(0.05)
    assert [t.state for t in svc.sweeps.trials(sweep.id)] == ["complete"] * 4
    return sweep.id


def test_importance_points_and_parallel_lines_on_fixed_trials() -> None:
    trials = [
        _trial(n, "complete", (x - 0.25) ** 2 + (1.0 if o == "sgd" else 0.0), x=x, opt=o, k=3)
        for n, (x, o) in enumerate([(0.1, "adam"), (0.9, "sgd"), (0.3, "sgd"), (0.7, "adam"), (0.5, "adam")])
    ]
    trials.append(_trial(5, "pruned", None, x=0.8, opt="adam", k=3))
    trials.append(_trial(6, "running", None, x=0.2, opt="sgd", k=3))
    # fewer than 2 finished trials: a note, no bars
    few = param_importances(trials[:1], "minimize")
    assert few.values == {} and "2 finished trials (1 so far)" in few.note
    imp = param_importances(trials, "minimize")
    assert set(imp.values) == {"x", "opt"}  # k never varied: Optuna leaves it out
    assert sum(imp.values.values()) == pytest.approx(1.0)
    assert list(imp.values) == sorted(imp.values, key=lambda n: -imp.values[n])
    assert "5 finished trials" in imp.note
    assert param_importances(trials, "minimize") == imp  # seeded: the same bars every time

    curves = {5: [(0, 4.0), (1, 3.0)]}
    pts = param_points("opt", trials, curves, best=0)
    assert pts.axis.labels == ["adam", "sgd"]
    assert pts.done[:2] == [(0.0, pytest.approx(0.0225)), (1.0, pytest.approx(1.4225))]
    assert pts.pruned == [(0.0, 3.0)]  # at the last value it reported; the running trial is left out
    assert pts.best == (0.0, pytest.approx(0.0225))

    axes, lines = parallel_lines(trials, curves, best=0)
    assert axes == ["x", "opt", "k"]
    by = {ln.number: ln for ln in lines}
    assert set(by) == {0, 1, 2, 3, 4, 5} and lines[-1].number == 0  # the best drawn on top
    for ln in lines:
        assert all(0.0 <= y <= 1.0 for y in ln.ys)
    assert by[0].ys[0] == 0.0 and by[1].ys[0] == 1.0 and by[1].ys[1] == 1.0 and by[0].ys[2] == 0.5
    assert (
        by[5].xs == [0.0, 1.0, 2.0, 3.0] and by[5].ys[-1] == 1.0
    )  # the pruned one's last value is the highest
    _, unreported = parallel_lines(trials, {}, best=0)
    assert next(ln for ln in unreported if ln.number == 5).xs == [
        0.0,
        1.0,
        2.0,
    ]  # stops at its last parameter


async def test_analysis_views_switch_by_key(gpu_services: Services, quick_sweep: int, tmp_path: Path) -> None:
    app = app_for(gpu_services, live_s=3600)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_sweeps(pilot)
        curves, analysis = screen.query_one(TrialCurves), screen.query_one(SweepAnalysis)
        assert curves.display and not analysis.display
        await pilot.press("i")
        await until(pilot, lambda: "bars" in analysis.drawn)
        assert analysis.display and not curves.display
        bars = dict(analysis.drawn["bars"])
        await settle(pilot)
        assert set(bars) == {"x", "opt"} and sum(bars.values()) == pytest.approx(1.0, abs=1e-3)
        text = _svg_text(app.export_screenshot())
        assert "parameter importance" in text and "fANOVA over 4 finished trials" in text
        await pilot.press("p")
        points = analysis.drawn["points"]
        first = points.axis.name
        assert first == "x" and len(points.done) == 4 and points.best is not None
        assert "x vs loss" in str(analysis.border_title) and "(1/2)" in str(analysis.border_title)
        await pilot.press("p")
        assert analysis.drawn["points"].axis.labels == ["adam", "sgd"]
        assert "(2/2)" in str(analysis.border_title)
        await pilot.press("c")
        lines = analysis.drawn["lines"]
        assert len(lines) == 4 and sum(1 for ln in lines if ln.best) == 1
        assert "parallel coordinates" in _svg_text(app.export_screenshot())
        titles = [c.title for c in screen.commands()]
        assert {"Sweep: parameter importance", "Sweep: parallel coordinates"} <= set(titles)
        await pilot.press("v")
        assert curves.display and not analysis.display
        # the help overlay lists the keys
        await pilot.press("question_mark")
        await settle(pilot)
        overlay = app.screen
        assert isinstance(overlay, HelpOverlay)
        listed = {(keys, does) for _, keys, does in overlay.rows}
        assert {("i", "Importance"), ("p", "Param vs objective"), ("c", "Parallel coords")} <= listed


async def test_importance_waits_for_two_finished_trials(gpu_services: Services, finished_sweep: int) -> None:
    async with app_for(gpu_services, live_s=3600).run_test(size=SIZE) as pilot:
        screen = await open_sweeps(pilot)
        analysis = screen.query_one(SweepAnalysis)
        await pilot.press("i")
        await settle(pilot)
        assert analysis.drawn == {} and analysis.importance.note.endswith("(1 so far)")
        assert "needs 2 finished trials" in _svg_text(pilot.app.export_screenshot())
        await pilot.press("p")
        pts = analysis.drawn["points"]
        assert len(pts.done) == 1 and len(pts.pruned) == 1
        assert "red x: pruned 1 (last value)" in str(analysis.border_subtitle)
        await pilot.press("c")
        lines = analysis.drawn["lines"]
        assert {ln.state for ln in lines} == {"complete", "pruned"}


async def _importance(pilot: Pilot[None]) -> None:
    screen = await open_sweeps(pilot)
    await pilot.press("i")
    analysis = screen.query_one(SweepAnalysis)
    await until(pilot, lambda: "bars" in analysis.drawn)
    await settle(pilot)


class TestAnalysisSnapshots:
    def test_wide(self, gpu_services: Services, quick_sweep: int, utc: None, snap_compare: Snap) -> None:
        assert snap_compare(
            app_for(gpu_services, live_s=3600), terminal_size=(160, 48), run_before=_importance
        )

    def test_narrow(self, gpu_services: Services, quick_sweep: int, utc: None, snap_compare: Snap) -> None:
        assert snap_compare(
            app_for(gpu_services, live_s=3600), terminal_size=(100, 30), run_before=_importance
        )
