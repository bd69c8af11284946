"""The demo as a list of steps over one shared state, with progress bars and a summary.

Each capability is a `Step` in `STEPS` (build the training set in the feature
store, train as jobs, sweep, register the best model, serve it) that reads
what earlier steps left in `DemoState` (in `state.py`, so that the steps'
modules need not import this one). Training happens in the scheduler's job
processes, which log through the public client (``mlbox.*``) exactly as a
user's script would; this process submits, drives the scheduler and reads the
results back from the runs.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

import mlbox
from mlbox.demo.featureset import PIXELS, STATS, build_training_set
from mlbox.demo.interop import interop
from mlbox.demo.labeling import labeling
from mlbox.demo.monitoring import monitoring
from mlbox.demo.pipeline import pipeline
from mlbox.demo.registration import CHALLENGER, CHAMPION, register_champion
from mlbox.demo.scheduling import (
    JOB_TIMEOUT_S,
    Followed,
    drive,
    job_spec,
    log_tail,
    poll,
    result_of,
    stop_jobs,
)
from mlbox.demo.serving import serve
from mlbox.demo.state import DemoState
from mlbox.demo.sweep import SWEEP_EXPERIMENT, follow_sweep, report_sweep, start_sweep, stop_sweep, sweep_done
from mlbox.demo.sweep import size as sweep_size
from mlbox.demo.trials import EXPERIMENT, TrialResult, plan
from mlbox.scheduler.schemas import Job
from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.store.errors import MlboxError

THREADS = 1
"""Threads for torch and BLAS in this process (loading and serving the champion); each job
runs single-threaded too (`jobs.THREADS_ENV`). The demo is sized for 2 CPU cores; its
models are so small that a second thread only adds synchronisation: on a busy machine
spinning threads made it several times slower. One thread also makes BLAS results,
hence the runs, the same on every machine."""


@dataclass(frozen=True)
class Step:
    title: str
    run: Callable[[DemoState], None]


def build_features(state: DemoState) -> None:
    """The digits go into the feature store; the training set comes out of a point-in-time join."""
    with state.console.status("Writing the digits as feature views and building the training set…"):
        fs = build_training_set(state.services.features, state.services.home.root / "demo", seed=state.seed)
        state.features = fs
        state.split = fs.split
        state.trials = plan(state.quick, seed=state.seed)
    s = fs.split
    state.console.print(
        f"  [green]✓[/] training set {fs.training_set_id}: {fs.rows} rows (entity frame {fs.entity_rows}) "
        f"from {len(fs.views)} views ({fs.versions}), {len(PIXELS)} pixels + {len(STATS)} stats per image; "
        f"materialized {sum(fs.materialized.values())} rows online",
        highlight=False,
    )
    state.console.print(
        f"digits: {len(s.y_train)} train / {len(s.y_val)} validation images, "
        f"{len(state.trials)} runs as jobs into experiment [bold]{EXPERIMENT}[/]"
    )


def train_all(state: DemoState) -> None:
    """Every trial as a job, and the sweep's trials beside them, placed by the scheduler within
    its CPU budget, under two progress bars.

    The jobs' bar counts epochs, forest stages or fits, from the ``val_acc``
    points each job's run has logged so far; the sweep's counts epochs.
    """
    assert state.features is not None, "the features step runs first"
    services = state.services
    data_dir = state.features.data_dir
    followed = [Followed(t, services.scheduler.submit(job_spec(t, data_dir))) for t in state.trials]
    state.job_ids = [f.job.id for f in followed]
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=state.console,
    )
    failed: list[Followed] = []
    n = len(followed)
    start_sweep(state)
    with progress:
        task = progress.add_task("", total=sum(t.units for t in state.trials))
        sweep_task = progress.add_task(
            "", total=sweep_size(state.quick).n_trials * sweep_size(state.quick).epochs
        )

        def on_pass() -> None:
            for f in followed:
                if not f.reported:
                    poll(services, f)
            for f in followed:
                if f.reported or not f.job.terminal:
                    continue
                f.reported = True
                if f.job.state != "succeeded":
                    failed.append(f)
                    progress.console.print(
                        f"  [red]✗[/] job {f.job.id:<3} {escape(f.trial.name):<18} {f.job.state}"
                        f" (exit code {f.job.exit_code}): {escape(f.job.message or '')}"
                    )
                    progress.console.print(escape(log_tail(services, f.job.id)), highlight=False)
                    continue
                result = result_of(services, f)
                f.units_done = f.trial.units
                state.results.append(result)
                progress.console.print(
                    f"  [green]✓[/] job {f.job.id:<3} run {result.run_id:<4} {escape(result.name):<18} "
                    f"val_acc {result.val_acc:.4f}  ({result.seconds:.1f} s)"
                )
            running = [f for f in followed if f.job.state == "running"]
            done = sum(f.reported for f in followed)
            best = max((r.val_acc for r in state.results), default=None)
            progress.update(
                task,
                completed=sum(f.units_done for f in followed),
                description=f"jobs: {done}/{n} done, {len(running)} running"
                + ("" if best is None else f"  best val_acc {best:.3f}"),
            )
            follow_sweep(state, progress, sweep_task)

        try:
            drive(
                services,
                lambda: all(f.reported for f in followed) and sweep_done(state),
                on_pass,
                timeout_s=JOB_TIMEOUT_S,
                what="training and the sweep",
            )
        except BaseException:  # Ctrl-C, or a job's run unreadable: leave nothing running
            stop_jobs(services, state.job_ids + stop_sweep(state))
            services.sweeps.reconcile_once()  # the stopped sweep records its cancelled trials
            raise
    state.results.sort(key=lambda r: r.run_id)
    if failed:
        names = ", ".join(f"job {f.job.id} ({f.trial.name})" for f in failed)
        raise MlboxError(f"{len(failed)} training job(s) failed: {names}; see mlbox jobs logs JOB_ID")


def register(state: DemoState) -> None:
    """The best run's model becomes ``digits@champion`` and the runner-up's ``@challenger``."""
    assert state.split is not None, "load_data runs first"
    with state.console.status("Registering the best models and loading the champion back…"):
        reg = register_champion(state.services.registry, state.results, state.split)
        if "torch" in sys.modules:  # loading a torch champion imported it: one thread, as the jobs
            from mlbox.demo.mlp import limit_threads

            limit_threads(THREADS)
    state.registered = reg
    champion, challenger = reg.champion_run, reg.challenger_run
    state.console.print(
        f"  [green]✓[/] {reg.name} version {reg.champion.version} @{CHAMPION}   "
        f"run {champion.run_id} {escape(champion.name)}  (loaded back: val_acc {reg.reproduced_acc:.4f})"
    )
    if reg.challenger is not None and challenger is not None:
        state.console.print(
            f"  [green]✓[/] {reg.name} version {reg.challenger.version} @{CHALLENGER} "
            f"run {challenger.run_id} {escape(challenger.name)}"
        )


def summarize(state: DemoState) -> None:
    best = state.best
    table = Table(title=f"{EXPERIMENT}: {len(state.results)} runs (one job each)", title_justify="left")
    table.add_column("job", justify="right")
    table.add_column("run", justify="right")
    table.add_column("name")
    table.add_column("model")
    table.add_column("val_acc", justify="right")
    table.add_column("val_loss", justify="right")
    table.add_column("")
    jobs = {services_job.run_id: services_job.id for services_job in _jobs(state)}
    for r in state.results:
        is_best = best is not None and r.run_id == best.run_id
        table.add_row(
            str(jobs.get(r.run_id, "")),
            str(r.run_id),
            escape(r.name),
            r.family,
            f"{r.val_acc:.4f}",
            f"{r.val_loss:.4f}",
            "★ best" if is_best else "",
            style="bold green" if is_best else None,
        )
    state.console.print(table)
    reg = state.registered
    if reg is not None:
        champion, challenger = reg.champion_run, reg.challenger_run
        line = (
            f"model [bold]{reg.name}[/]: {CHAMPION} = version {reg.champion.version} (run {champion.run_id})"
        )
        if reg.challenger is not None and challenger is not None:
            line += f", {CHALLENGER} = version {reg.challenger.version} (run {challenger.run_id})"
        state.console.print(line)
    fs = state.features
    if fs is not None:
        state.console.print(
            f"training set {fs.training_set_id} ({fs.rows} rows from {fs.versions}): tag training_set on every run"
        )
    sweep = state.sweep
    if sweep is not None and sweep.best_value is not None:
        state.console.print(
            f"sweep {sweep.id} {sweep.name}: best {sweep.spec.metric} {sweep.best_value:.4f} "
            f"(trial {sweep.best_trial}) in experiment {SWEEP_EXPERIMENT}"
        )
    state.console.print(f"done in {time.monotonic() - state.started:.1f} s")


def _jobs(state: DemoState) -> list[Job]:
    return [state.services.scheduler.get(j) for j in state.job_ids]


def _program() -> str:
    """How to call mlbox again: ``mlbox`` when that is on PATH, else the path this run used."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "mlbox"
    found = shutil.which("mlbox")
    if Path(argv0).name != "mlbox" or (found and Path(found).resolve() == Path(argv0).resolve()):
        return "mlbox"
    rel = os.path.relpath(argv0)
    return rel if len(rel) < len(argv0) else argv0


def what_to_open(state: DemoState) -> None:
    """The commands to look at what was logged; copy-pasteable, so never wrapped."""
    best = state.best
    settings = state.services.settings
    token = state.services.home.token_path
    prog = _program()
    commands: list[tuple[str, str]] = []
    if settings.home != Settings().home:
        commands.append((f"export MLBOX_HOME={settings.home}", "where this demo logged"))
    commands += [
        (prog, "the terminal UI: Experiments → digits-demo, curves, compare"),
        (f'{prog} runs ls -e {EXPERIMENT} -o "metrics.val_acc DESC"', ""),
    ]
    if best is not None:
        commands.append((f"{prog} runs show {best.run_id}", f"the best run: {best.name}"))
    if state.registered is not None:
        ref = state.registered.champion_ref
        commands.append((f"{prog} models show {ref}", "the champion: lineage, signature, files"))
    commands.append((f"{prog} jobs ls", "the training jobs and sweep trials, their states and exit codes"))
    if state.sweep is not None:
        commands.append((f"{prog} sweeps ls", f"the sweep; then: {prog} sweeps show {state.sweep.id}"))
    if state.features is not None:
        commands.append((f"{prog} features ls", "the feature views and their versions, freshness"))
    if best is not None:
        commands += [
            (f"{prog} up", "headless HTTP API; then, in another shell:"),
            (
                f'curl -H "Authorization: Bearer $(cat {token})" '
                f"http://127.0.0.1:{settings.port}/api/v1/runs/{best.run_id}",
                "",
            ),
        ]
    width = max(len(c) for c, note in commands if note)
    state.console.print("\nWhat to open next:", highlight=False)
    for command, note in commands:
        line = f"  {command:<{width}}   # {note}" if note else f"  {command}"
        state.console.print(line, markup=False, highlight=False, soft_wrap=True)


STEPS: Sequence[Step] = (
    Step("features", build_features),
    Step("train", train_all),
    Step("sweep", report_sweep),
    Step("register", register),
    Step("serve", serve),
    Step("monitor", monitoring),
    Step("pipeline", pipeline),
    Step("labeling", labeling),
    Step("mlflow", interop),
    Step("summary", summarize),
    Step("what to open", what_to_open),
)


def run_demo(services: Services, *, quick: bool = False, console: Console | None = None) -> list[TrialResult]:
    """Run every step against ``services``' home; returns the trials' results."""
    mlbox.set_home(services.settings.home)
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    state = DemoState(
        services=services, console=console or Console(soft_wrap=not sys.stdout.isatty()), quick=quick
    )
    # The demo writes its example data into the home (raw CSVs, feature Parquet, training sets,
    # an MLflow export, a report) through pandas, polars and the exporter, which take the
    # process's umask; the home is private (folders 0700, files 0600), so the demo's umask is.
    umask = os.umask(0o077)
    try:
        with threadpool_limits(limits=THREADS):
            for step in STEPS:
                step.run(state)
    finally:
        os.umask(umask)
    return state.results
