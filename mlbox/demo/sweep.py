"""The demo's sweep: the MLP's learning rate and width searched by Optuna, trials run as jobs.

`services.sweeps` asks Optuna's TPE sampler for each trial's parameters and
submits the trial as a job (`jobs.sweep_trial`), at most ``parallel`` at a
time. ASHA watches each trial's ``val_acc`` per epoch, as read from its run,
and a trial it prunes is cancelled mid-training. The demo drives the sweep in
its own process, as the appliance's scheduler loop would, at the same time as
the training jobs: the scheduler places both within one CPU budget.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any

from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.table import Table

from mlbox.demo.jobs import DATA_ENV, EPOCHS_ENV, THREADS_ENV
from mlbox.demo.scheduling import JOB_TIMEOUT_S
from mlbox.demo.state import DemoState
from mlbox.store.errors import MlboxError
from mlbox.sweeps.schemas import LIVE_SWEEP_STATES, Sweep, SweepSpec, Trial

SWEEP_NAME = "digits-mlp"
SWEEP_EXPERIMENT = "digits-sweep"
METRIC = "val_acc"
SPACE: dict[str, Any] = {
    "lr": {"type": "float", "low": 3e-4, "high": 0.1, "log": True},
    "hidden": [16, 32, 64, 128],
}
PRUNER_ARGS: dict[str, Any] = {"min_resource": 1, "reduction_factor": 3}
"""ASHA's rungs at epochs 1, 3, 9: a trial goes on past a rung only among the best third there."""


@dataclass(frozen=True)
class SweepSize:
    n_trials: int
    parallel: int
    epochs: int


def size(quick: bool) -> SweepSize:
    return (
        SweepSize(n_trials=3, parallel=2, epochs=6) if quick else SweepSize(n_trials=6, parallel=2, epochs=20)
    )


def sweep_spec(quick: bool, data_dir: str, seed: int = 0) -> SweepSpec:
    s = size(quick)
    return SweepSpec(
        name=SWEEP_NAME,
        metric=METRIC,
        direction="maximize",
        command=[sys.executable, "-m", "mlbox.scheduler.entry", "mlbox.demo.jobs:sweep_trial"],
        space=SPACE,
        n_trials=s.n_trials,
        parallel=s.parallel,
        sampler="tpe",
        pruner="asha",
        pruner_args=PRUNER_ARGS,
        seed=seed,
        cpus_per_trial=1.0,
        env={**THREADS_ENV, DATA_ENV: data_dir, EPOCHS_ENV: str(s.epochs)},
        experiment=SWEEP_EXPERIMENT,
        trial_timeout_s=JOB_TIMEOUT_S,
    )


def epochs_of(sweep: Sweep) -> int:
    """The epochs each of ``sweep``'s trials trains (from the environment its trials get)."""
    return int(sweep.spec.env.get(EPOCHS_ENV, "0"))


def units_done(trials: list[Trial], epochs: int) -> int:
    """Progress in epochs: a finished trial (pruned included) counts whole."""
    return sum(epochs if t.state != "running" else (t.last_step or -1) + 1 for t in trials)


def start_sweep(state: DemoState) -> Sweep:
    """Create the sweep; its first trials are submitted at once, after the training jobs."""
    assert state.features is not None, "the features step runs first"
    sweep = state.services.sweeps.create(sweep_spec(state.quick, str(state.features.data_dir), state.seed))
    state.sweep = sweep
    state.sweep_started = time.monotonic()
    return sweep


def sweep_done(state: DemoState) -> bool:
    return state.sweep is not None and state.sweep.state not in LIVE_SWEEP_STATES


def follow_sweep(state: DemoState, progress: Progress, task: TaskID) -> None:
    """Refresh ``state.sweep`` and its progress bar (units: epochs; a pruned trial counts whole)."""
    assert state.sweep is not None
    sweeps = state.services.sweeps
    s = size(state.quick)
    current = sweeps.get(state.sweep.id)
    trials = sweeps.trials(current.id)
    running = sum(t.state == "running" for t in trials)
    best = "" if current.best_value is None else f"  best {METRIC} {current.best_value:.3f}"
    progress.update(
        task,
        completed=units_done(trials, s.epochs),
        description=f"sweep {escape(current.name)}: {len(trials)}/{s.n_trials} trials, {running} running{best}",
    )
    state.sweep = current


def stop_sweep(state: DemoState) -> list[int]:
    """The demo was interrupted: stop the sweep (its running trials' jobs are cancelled); returns
    the trials' jobs, for the caller to wait on (`scheduling.stop_jobs`)."""
    if state.sweep is None:
        return []
    sweeps = state.services.sweeps
    sweeps.stop(state.sweep.id)
    return [t.job_id for t in sweeps.trials(state.sweep.id) if t.job_id is not None]


def report_sweep(state: DemoState) -> None:
    """Print the trials (pruned ones marked) and the best; a sweep that found nothing fails the demo."""
    assert state.sweep is not None
    sweeps = state.services.sweeps
    final = sweeps.get(state.sweep.id)
    state.sweep = final
    print_sweep(state, final, sweeps.trials(final.id), time.monotonic() - state.sweep_started)
    if final.state != "finished" or final.best_trial is None:
        raise MlboxError(f"sweep {final.id} ended {final.state}: {final.message or 'no trial completed'}")


def _state_text(t: Trial, best: bool) -> str:
    if t.state == "pruned":  # steps are 0-based epochs
        return f"✂ pruned, epoch {t.last_step + 1}" if t.last_step is not None else "✂ pruned"
    if t.state == "failed":
        return f"✗ {t.message or 'failed'}"
    return "✓ complete ★ best" if best else "✓ complete"


def print_sweep(state: DemoState, sweep: Sweep, trials: list[Trial], seconds: float) -> None:
    table = Table(
        title=f"sweep {sweep.id} {escape(sweep.name)}: {len(trials)} trials of the MLP, up to "
        f"{epochs_of(sweep)} epochs (TPE sampler, ASHA pruner, {sweep.spec.parallel} at a time), {seconds:.1f} s",
        title_justify="left",
    )
    for name, justify in (("trial", "right"), ("job", "right"), ("run", "right"), ("lr", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("hidden", justify="right")
    table.add_column(METRIC, justify="right")
    table.add_column("state")
    for t in trials:
        is_best = t.number == sweep.best_trial
        value = "" if t.value is None or math.isnan(t.value) else f"{t.value:.4f}"
        table.add_row(
            str(t.number),
            str(t.job_id or ""),
            str(t.run_id or ""),
            f"{t.params.get('lr', float('nan')):.2g}",
            str(t.params.get("hidden", "")),
            value,
            _state_text(t, is_best),
            style="bold green" if is_best else ("dim" if t.state == "pruned" else None),
        )
    state.console.print(table)
    if sweep.best_trial is not None and sweep.best_value is not None and sweep.best_params is not None:
        params = ", ".join(
            f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}" for k, v in sweep.best_params.items()
        )
        pruned = sum(t.state == "pruned" for t in trials)
        state.console.print(
            f"  [green]✓[/] best: trial {sweep.best_trial}, {METRIC} {sweep.best_value:.4f} ({params}); "
            f"{pruned} of {len(trials)} trials pruned by ASHA",
            highlight=False,
        )
