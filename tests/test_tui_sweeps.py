"""The Sweeps view over a real sweep: trials run as real jobs on two simulated GPUs, log their
metric through tracking, and the median pruner stops a bad one.

The sweep is driven to its end before the app opens (a scheduler pass then a
sweep pass, as the appliance's loop does), so the view shows a finished
sweep: a complete trial marked best and a pruned one whose curve ends where
it was stopped. Pure parts are checked on fixed values.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from textual.pilot import Pilot

from mlbox.services import Services
from mlbox.sweeps.schemas import SweepSpec, Trial
from mlbox.tui.screens.run_detail import RunDetailScreen
from mlbox.tui.screens.sweeps import SweepsScreen
from mlbox.tui.views.sweeps import params_text, trial_curves, trial_rows
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
