"""The demo as a list of steps over one shared state, with a progress bar and a summary.

Each later capability adds a `Step` to `STEPS` (register the best model,
serve it, build features, monitor it) and reads what earlier steps left in
`DemoState`. Everything is logged through the public client (``mlbox.*``)
pointed at the CLI's home, exactly as a user's script would log.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from mlbox.demo.digits import Split, load_split
from mlbox.demo.registration import CHALLENGER, CHAMPION, Registered, register_champion
from mlbox.demo.serving import serve
from mlbox.demo.trials import EXPERIMENT, Trial, TrialResult, plan, run_trial
from mlbox.services import Services
from mlbox.settings import Settings

THREADS = 1
"""Threads for torch and BLAS. The demo is sized for 2 CPU cores (under 2 minutes in full,
~15 s with ``--quick``); its models are so small that a second thread only adds
synchronisation: on a busy machine spinning threads made it several times slower.
One thread also makes BLAS results, hence the runs, the same on every machine."""


@dataclass
class DemoState:
    services: Services
    console: Console
    quick: bool
    seed: int = 0
    started: float = field(default_factory=time.monotonic)
    split: Split | None = None
    trials: list[Trial] = field(default_factory=list)
    results: list[TrialResult] = field(default_factory=list)
    registered: Registered | None = None

    @property
    def best(self) -> TrialResult | None:
        return max(self.results, key=lambda r: r.val_acc, default=None)


@dataclass(frozen=True)
class Step:
    title: str
    run: Callable[[DemoState], None]


def load_data(state: DemoState) -> None:
    from mlbox.demo.mlp import limit_threads

    with state.console.status("Loading scikit-learn's digits and torch…"):
        limit_threads(THREADS)
        state.split = load_split(seed=state.seed)
        state.trials = plan(state.quick, seed=state.seed)
    s = state.split
    state.console.print(
        f"digits: {len(s.y_train)} train / {len(s.y_val)} validation images, "
        f"{len(state.trials)} runs into experiment [bold]{EXPERIMENT}[/]"
    )


def train_all(state: DemoState) -> None:
    """Every trial in turn under one overall progress bar (units: epochs, stages, fits)."""
    assert state.split is not None, "load_data runs first"
    split = state.split
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=state.console,
    )
    n = len(state.trials)
    with progress:
        task = progress.add_task("", total=sum(t.units for t in state.trials))
        for i, trial in enumerate(state.trials, 1):
            label = f"{i}/{n} {escape(trial.name)}"
            progress.update(task, description=label)

            def report(done: int, val_acc: float, label: str = label) -> None:
                progress.update(task, advance=done, description=f"{label}  val_acc {val_acc:.3f}")

            result = run_trial(trial, split, report)
            state.results.append(result)
            progress.console.print(
                f"  [green]✓[/] run {result.run_id:<4} {escape(result.name):<18} "
                f"val_acc {result.val_acc:.4f}  ({result.seconds:.1f} s)"
            )


def register(state: DemoState) -> None:
    """The best run's model becomes ``digits@champion`` and the runner-up's ``@challenger``."""
    assert state.split is not None, "load_data runs first"
    with state.console.status("Registering the best models and loading the champion back…"):
        reg = register_champion(state.services.registry, state.results, state.split)
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
    table = Table(title=f"{EXPERIMENT}: {len(state.results)} runs", title_justify="left")
    table.add_column("run", justify="right")
    table.add_column("name")
    table.add_column("model")
    table.add_column("val_acc", justify="right")
    table.add_column("val_loss", justify="right")
    table.add_column("")
    for r in state.results:
        is_best = best is not None and r.run_id == best.run_id
        table.add_row(
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
    state.console.print(f"done in {time.monotonic() - state.started:.1f} s")


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
    Step("load data", load_data),
    Step("train", train_all),
    Step("register", register),
    Step("serve", serve),
    Step("summary", summarize),
    Step("what to open", what_to_open),
)


def run_demo(services: Services, *, quick: bool = False, console: Console | None = None) -> list[TrialResult]:
    """Run every step against ``services``' home; returns the trials' results."""
    mlbox.set_home(services.settings.home)
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    state = DemoState(services=services, console=console or Console(), quick=quick)
    with threadpool_limits(limits=THREADS):
        for step in STEPS:
            step.run(state)
    return state.results
