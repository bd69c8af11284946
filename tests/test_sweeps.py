"""Sweeps driven for real: trials are jobs (real subprocesses) whose runs log the objective.

The loop here is the appliance's scheduler loop in miniature: a scheduler pass
then a sweep pass, until the sweep ends. GPUs are simulated (``gpus="2"``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from mlbox.appliance import Appliance
from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.store.errors import InvalidInput, NotFound
from mlbox.sweeps.schemas import Sweep, SweepSpec

# Logs `loss` per step (its floor set by x), the value `{x}` became on the command
# line, and which GPUs it sees; trial 1 and later run long and badly when BAD is set
# (the pruning case). Writes a `python`-flavor model with the class from model_def.py.
TRIAL = """\
import os, sys, time
import mlbox
from model_def import Scale

p = mlbox.trial_params()
number = int(os.environ["MLBOX_TRIAL_NUMBER"])
bad = os.environ.get("BAD") == "1" and number >= 1
steps = 400 if bad else 4
with mlbox.start_run(log_code=False, log_environment=False):
    mlbox.log_param("cuda", os.environ.get("CUDA_VISIBLE_DEVICES", "?") or "none")
    mlbox.log_metric("argx", float(sys.argv[1]))
    for step in range(steps):
        floor = 100.0 if bad else (p["x"] - 0.25) ** 2
        mlbox.log_metric("loss", floor + 1.0 / (step + 1), step=step)
        mlbox.flush()
        time.sleep(0.05 if bad else 0.15)
    if os.environ.get("SAVE") == "1":
        mlbox.log_model(Scale(p["x"]))
"""
MODEL_DEF = """\
import numpy as np


class Scale:
    def __init__(self, factor):
        self.factor = factor

    def predict(self, inputs):
        return np.asarray(inputs) * self.factor
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "trial.py").write_text(TRIAL)
    (folder / "model_def.py").write_text(MODEL_DEF)
    return folder


def spec(workdir: Path, **kw: object) -> SweepSpec:
    base: dict[str, object] = {
        "metric": "loss",
        "command": [sys.executable, "trial.py", "{x}"],
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "n_trials": 4,
        "parallel": 2,
        "seed": 3,
        "workdir": str(workdir),
    }
    base.update(kw)
    return SweepSpec(**base)  # type: ignore[arg-type]


def drive(services: Services, until: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "condition not reached in time"
        services.scheduler.reconcile_once()
        services.sweeps.reconcile_once()
        time.sleep(0.05)


def done(services: Services, sweep_id: int) -> Callable[[], bool]:
    return lambda: services.sweeps.get(sweep_id).state not in ("running", "stopping")


def test_trials_run_as_jobs_in_parallel_on_their_own_gpus(gpu_services: Services, workdir: Path) -> None:
    svc = gpu_services
    sweep = svc.sweeps.create(spec(workdir, gpus_per_trial=1))
    assert sweep.state == "running" and sweep.counts == {"running": 2}  # first trials asked at once
    drive(svc, done(svc, sweep.id))
    final = svc.sweeps.get(sweep.id)
    trials = svc.sweeps.trials(sweep.id)
    assert final.state == "finished" and final.counts == {"complete": 4}
    jobs = {t.number: svc.scheduler.get(t.job_id) for t in trials if t.job_id is not None}
    assert all(j.spec.owner == f"sweep:{sweep.id}" and j.state == "succeeded" for j in jobs.values())
    for t in trials:
        run = svc.tracking.get_run(t.run_id) if t.run_id is not None else None
        assert run is not None and run.experiment == final.experiment
        series = svc.tracking.metric_history(run.id, "loss")
        assert t.value == series[-1].value  # objective "last"
        assert svc.tracking.metric_history(run.id, "argx")[0].value == pytest.approx(t.params["x"])  # {x}
        assert float(run.params["x"]) == pytest.approx(t.params["x"])  # labelled with its params
        assert run.tags["mlbox.sweep"] == str(sweep.id)
        assert run.params["cuda"] == ",".join(map(str, jobs[t.number].gpus))  # sees only its lease
    # the first two ran at once, on different GPUs
    a, b = jobs[0], jobs[1]
    assert a.started_at and b.started_at and a.finished_at and b.finished_at
    assert a.started_at < b.finished_at and b.started_at < a.finished_at
    assert {tuple(a.gpus), tuple(b.gpus)} == {(0,), (1,)}
    # intermediate values reached the study: 4 steps per trial
    curves = svc.sweeps.curves(sweep.id)
    assert sorted(curves) == [0, 1, 2, 3] and all(len(c) == 4 for c in curves.values())
    best = svc.sweeps.best(sweep.id)
    assert best.value == min(t.value for t in trials if t.value is not None)
    assert final.best_trial == best.number and final.best_params == best.params


def test_pruned_trial_is_pruned_everywhere(gpu_services: Services, workdir: Path) -> None:
    """One word for one fact: the trial, its job and its run all say ``pruned`` (the job said
    ``cancelled`` and the run ``killed`` before)."""
    svc = gpu_services
    sweep = svc.sweeps.create(
        spec(
            workdir,
            n_trials=2,
            parallel=1,
            pruner="median",
            pruner_args={"n_startup_trials": 1, "n_warmup_steps": 1},
            env={"BAD": "1"},
        )
    )
    drive(svc, done(svc, sweep.id))
    first, second = svc.sweeps.trials(sweep.id)
    assert first.state == "complete"
    assert (
        second.state == "pruned"
        and second.message is not None
        and second.message.startswith("pruned at step")
    )
    assert second.value is not None and second.value > 100  # the last reported value
    assert second.job_id is not None
    drive(svc, lambda: svc.scheduler.get(second.job_id).terminal, timeout=30)  # type: ignore[arg-type]
    job = svc.scheduler.get(second.job_id)
    assert job.state == "pruned" and job.message == "pruned by its sweep"
    assert second.run_id is not None
    assert svc.tracking.get_run(second.run_id).status == "pruned"
    assert [a.outcome for a in svc.scheduler.attempts(job.id)] == ["pruned"]
    assert svc.scheduler.list_jobs(["pruned"]) == [job]
    assert len(svc.tracking.metric_history(second.run_id, "loss")) < 400  # stopped long before its end


def test_failed_jobs_fail_their_trials_and_stop_ends_a_sweep(gpu_services: Services, workdir: Path) -> None:
    svc = gpu_services
    broken = svc.sweeps.create(
        spec(workdir, n_trials=2, command=[sys.executable, "-c", "raise SystemExit(3)"])
    )
    drive(svc, done(svc, broken.id))
    got = svc.sweeps.get(broken.id)
    assert (
        got.counts == {"failed": 2} and got.message == "every trial failed; trial 1: job failed (exit code 3)"
    )
    assert {t.message for t in svc.sweeps.trials(broken.id)} == {"job failed (exit code 3)"}
    with pytest.raises(NotFound):
        svc.sweeps.best(broken.id)
    # stop: running trials' jobs cancelled, the sweep ends as stopped
    long = svc.sweeps.create(spec(workdir, n_trials=10, env={"BAD": "1"}, parallel=1))
    drive(svc, lambda: any(t.run_id for t in svc.sweeps.trials(long.id)))
    assert svc.sweeps.stop(long.id).state == "stopping"
    drive(svc, done(svc, long.id))
    final = svc.sweeps.get(long.id)
    assert final.state == "stopped" and sum(final.counts.values()) == 1
    assert svc.sweeps.trials(long.id)[0].message == "stopped with the sweep"


def test_bad_specs_are_refused_naming_the_field(gpu_services: Services, workdir: Path) -> None:
    svc = gpu_services
    cases = [
        (spec(workdir, metric=""), "metric"),
        (spec(workdir, n_trials=0), "n_trials"),
        (spec(workdir, parallel=0), "parallel"),
        (spec(workdir, sampler="cmaes"), "sampler"),
        (spec(workdir, pruner_args={"nope": 1}, pruner="median"), "pruner_args"),
        (spec(workdir, command=[sys.executable, "trial.py", "{lr}"]), "command"),
        (spec(workdir, space={"x": {"type": "float", "low": 2, "high": 1}}), "space.x.low"),
        (spec(workdir, space=None), "space"),
        (spec(workdir, sampler="grid"), "space.x.step"),
        (spec(workdir, gpus_per_trial=3), "gpus_per_trial"),  # the scheduler refuses the first trial
    ]
    for bad, field in cases:
        with pytest.raises(InvalidInput) as err:
            svc.sweeps.create(bad)
        assert err.value.field == field, (field, err.value.message)
    assert svc.sweeps.list_sweeps() == []  # nothing half-made is left behind
    assert svc.scheduler.list_jobs() == []


def test_grid_and_python_space(gpu_services: Services, workdir: Path) -> None:
    svc = gpu_services
    grid = svc.sweeps.create(
        spec(
            workdir,
            sampler="grid",
            n_trials=50,
            space={"x": {"type": "float", "low": 0, "high": 0.5, "step": 0.25}},
        )
    )
    assert grid.spec.n_trials == 3  # capped at the grid's size
    source = "def space(trial):\n    trial.suggest_float('x', 0.0, 1.0)\n"
    fn = svc.sweeps.create(spec(workdir, space=None, space_source=source, n_trials=2, pruner="hyperband"))
    drive(svc, lambda: done(svc, grid.id)() and done(svc, fn.id)(), timeout=90)
    assert sorted(t.params["x"] for t in svc.sweeps.trials(grid.id)) == [0.0, 0.25, 0.5]
    assert svc.sweeps.get(fn.id).counts == {"complete": 2}


def test_study_is_rebuilt_by_another_process_view(
    gpu_services: Services, settings: Settings, workdir: Path
) -> None:
    """A second set of services over the same home (another process: the appliance) drives the
    sweep on from the tables, without repeating a trial."""
    svc = gpu_services
    sweep = svc.sweeps.create(spec(workdir, n_trials=3, parallel=1, sampler="random"))
    drive(svc, lambda: svc.sweeps.get(sweep.id).counts.get("complete", 0) >= 1)
    other = Services.open(replace(settings, scheduler=svc.settings.scheduler))
    appliance = Appliance(other)  # its scheduler loop's pass: scheduler, then sweeps
    deadline = time.monotonic() + 60
    while not done(other, sweep.id)():
        assert time.monotonic() < deadline
        appliance.schedule_once()
        time.sleep(0.05)
    trials = other.sweeps.trials(sweep.id)
    assert [t.state for t in trials] == ["complete"] * 3
    assert len({json.dumps(t.params) for t in trials}) == 3


def test_register_best_trial(gpu_services: Services, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = gpu_services
    sweep: Sweep = svc.sweeps.create(spec(workdir, n_trials=2, env={"SAVE": "1"}))
    drive(svc, done(svc, sweep.id))
    best = svc.sweeps.best(sweep.id)
    version = svc.sweeps.register_best(sweep.id, "scaler")
    assert (version.name, version.version, version.run_id) == ("scaler", 1, best.run_id)
    monkeypatch.syspath_prepend(str(workdir))
    loaded = svc.registry.load("scaler")
    assert float(loaded.predict([[1.0]])[0][0]) == pytest.approx(best.params["x"])
    # a sweep whose trials logged no model says so
    plain = svc.sweeps.create(spec(workdir, n_trials=1, parallel=1))
    drive(svc, done(svc, plain.id))
    with pytest.raises(NotFound) as err:
        svc.sweeps.register_best(plain.id, "nothing")
    assert "model" in err.value.message


def test_a_sweep_whose_pass_keeps_failing_is_failed_not_wedged(gpu_services: Services, workdir: Path) -> None:
    """A corrupt row makes every pass raise: after a few passes the sweep is failed and its jobs cancelled."""
    svc = gpu_services
    sweep = svc.sweeps.create(spec(workdir, n_trials=3, parallel=1, env={"BAD": "1"}))
    job_id = svc.sweeps.trials(sweep.id)[0].job_id
    assert job_id is not None
    with svc.sweeps.db.atomic() as conn:
        conn.execute("UPDATE sweeps SET space = '{broken', revision = revision + 1 WHERE id = ?", (sweep.id,))
    drive(svc, done(svc, sweep.id), timeout=30)
    failed = svc.sweeps.get(sweep.id)
    assert failed.state == "failed" and failed.message is not None and "5 passes" in failed.message
    assert svc.sweeps.trials(sweep.id)[0].message == "sweep failed"
    drive(svc, lambda: svc.scheduler.get(job_id).terminal, timeout=30)
    assert svc.scheduler.get(job_id).state == "cancelled"
