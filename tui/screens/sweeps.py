"""The Sweeps view: sweeps, the selected sweep's trials (state, params, objective value, the best
one highlighted) and the curves the trials reported, pruned ones marked where they were stopped.

Every sweep-service call runs in a thread worker that answers with a message;
a sequence number drops answers to a question since asked again. The list
and the selected sweep are re-read every ``refresh_s``, so a running sweep's
curves grow as its trials report. Enter on a trial opens its run; ``s``
stops the selected sweep after a confirmation.

The right pane shows the reported values (``v``) or an analysis of the sweep:
parameter importance (``i``, Optuna's fANOVA, computed in a worker once per
set of finished trials), a parameter against the objective (``p``, again for
the next parameter) and parallel coordinates (``c``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Static

from mlbox.store.errors import MlboxError
from mlbox.sweeps.schemas import LIVE_SWEEP_STATES, Sweep, Trial
from mlbox.sweeps.service import SweepService
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.screens.run_detail import RunDetailScreen
from mlbox.tui.views import format as fmt
from mlbox.tui.views import sweeps as view
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
from mlbox.tui.widgets.sweep_analysis import Mode, SweepAnalysis
from mlbox.tui.widgets.table_rows import cursor_key, fill
from mlbox.tui.widgets.trial_curves import TrialCurves

SWEEPS_SHOWN = 100
EMPTY = "no sweeps yet: start one with  mlbox sweep SPACE.yaml -- python train.py --lr {lr}"
SWEEP_COLUMNS = ("id", "name", "state", "trials", "done", "objective", "best", "search", "created")
TRIAL_COLUMNS = ("trial", "state", "value", "step", "params")


def sweep_cells(row: view.SweepRow) -> tuple[Text, ...]:
    return (
        Text(str(row.id), justify="right", style="bold"),
        fmt.inert(row.name, "bold"),
        Text(row.state, style=view.SWEEP_STYLES.get(row.state, "")),
        Text(row.trials, justify="right"),
        Text(row.counts),
        fmt.inert(row.objective),  # names the user's metric
        Text(row.best, style=view.BEST_STYLE if row.best != "-" else "dim"),
        fmt.inert(row.search, "dim"),
        Text(row.created, style="dim"),
    )


def trial_cells(row: view.TrialRow) -> tuple[Text, ...]:
    strong = view.BEST_STYLE if row.best else ""
    icon = view.TRIAL_ICONS.get(row.state, "?")
    return (
        Text(f"{'★' if row.best else ' '} {row.number}", justify="right", style=strong or "bold"),
        Text(f"{icon} {row.state}", style=view.TRIAL_STYLES.get(row.state, "")),
        Text(row.value, justify="right", style=strong),
        Text(row.step, justify="right", style="dim"),
        fmt.inert(row.params, strong),
    )


class SweepsLoaded(Message):
    def __init__(self, seq: int, sweeps: list[Sweep]) -> None:
        super().__init__()
        self.seq = seq
        self.sweeps = sweeps


class TrialsLoaded(Message):
    def __init__(
        self, seq: int, sweep: Sweep, trials: list[Trial], curves: dict[int, list[tuple[int, float | None]]]
    ) -> None:
        super().__init__()
        self.seq = seq
        self.sweep = sweep
        self.trials = trials
        self.curves = curves


class ImportanceLoaded(Message):
    def __init__(self, seq: int, key: tuple[int, tuple[int, ...]], importance: view.Importance) -> None:
        super().__init__()
        self.seq = seq
        self.key = key
        self.importance = importance


class SweepStopped(Message):
    def __init__(self, sweep: Sweep | None) -> None:
        super().__init__()
        self.sweep = sweep


class SweepsScreen(MlboxScreen):
    SECTION = "sweeps"
    TITLE = "Sweeps"
    DEFAULT_CSS = """
    SweepsScreen #summary {
        color: $text-muted;
        padding: 0 2;
        height: 1;
    }
    SweepsScreen #sweeps {
        height: auto;
        max-height: 8;
        margin: 0 1;
        border: round $panel-lighten-2;
    }
    SweepsScreen #panes {
        height: 1fr;
        margin: 0 1;
    }
    SweepsScreen #trials {
        width: 1fr;
        height: 1fr;
        border: round $panel-lighten-2;
    }
    SweepsScreen #curves, SweepsScreen #analysis {
        width: 1fr;
        border: round $panel-lighten-2;
    }
    SweepsScreen #analysis {
        display: none;
    }
    SweepsScreen #sweeps:focus, SweepsScreen #trials:focus {
        border: round $accent;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop_sweep", "Stop sweep"),
        Binding("t", "focus_trials", "Trials"),
        Binding("v", "show_view('curves')", "Values"),
        Binding("i", "show_view('importance')", "Importance"),
        Binding("p", "show_view('params')", "Param vs objective"),
        Binding("c", "show_view('coords')", "Parallel coords"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.selected: int | None = None
        self.sweeps: dict[int, Sweep] = {}
        self.trials: list[Trial] = []
        self.curves: dict[int, list[tuple[int, float | None]]] = {}
        self.best: int | None = None
        self.pane: Mode | str = "curves"
        self.param_index = 0
        self.importance_key: tuple[int, tuple[int, ...]] | None = None
        self.importance: view.Importance | None = None

    @property
    def service(self) -> SweepService:
        return self.ctx.services.sweeps

    def compose_body(self) -> ComposeResult:
        yield Static("reading the sweeps…", id="summary")
        yield DataTable(id="sweeps", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="panes"):
            yield DataTable(id="trials", cursor_type="row", zebra_stripes=True)
            yield TrialCurves(id="curves")
            yield SweepAnalysis(id="analysis")

    @property
    def sweeps_table(self) -> DataTable[Any]:
        return self.query_one("#sweeps", DataTable)

    @property
    def trials_table(self) -> DataTable[Any]:
        return self.query_one("#trials", DataTable)

    def on_mount(self) -> None:
        for table, columns in ((self.sweeps_table, SWEEP_COLUMNS), (self.trials_table, TRIAL_COLUMNS)):
            for label in columns:
                table.add_column(label, key=label)
        self.sweeps_table.border_title = "sweeps"
        self.trials_table.border_title = "trials"
        self.query_one(TrialCurves).border_title = "reported values"
        self.query_one(SweepAnalysis).border_title = "analysis"
        self.sweeps_table.focus()
        self.read_first()
        self.set_interval(self.ctx.refresh_s, self.poll)

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Stop sweep", "Ask no more trials, cancel the running ones", self.action_stop_sweep
        )
        yield SystemCommand("Refresh sweeps", "Re-read the sweeps now", self.reload)
        yield SystemCommand(
            "Sweep: reported values", "Each trial's reported values per step", self.show_curves_pane
        )
        yield SystemCommand(
            "Sweep: parameter importance",
            "Which parameters move the objective (Optuna fANOVA)",
            self.show_importance_pane,
        )
        yield SystemCommand(
            "Sweep: parameter vs objective",
            "A scatter of one parameter against the objective (again: the next one)",
            self.show_params_pane,
        )
        yield SystemCommand(
            "Sweep: parallel coordinates",
            "Every trial across its parameters and the objective, axes scaled to 0-1",
            self.show_coords_pane,
        )

    # -- fetching ---------------------------------------------------------------------------

    def reload(self) -> None:
        self.reading = True
        self.fetch_sweeps(self.ask("sweeps"))

    @work(thread=True, group="sweeps")
    def fetch_sweeps(self, seq: int) -> None:
        try:
            sweeps = self.service.list_sweeps(limit=SWEEPS_SHOWN)
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(SweepsLoaded(seq, sweeps))

    def request_trials(self, sweep_id: int) -> None:
        self.reading = True
        self.fetch_trials(self.ask("trials"), sweep_id)

    @work(thread=True, group="trials")
    def fetch_trials(self, seq: int, sweep_id: int) -> None:
        try:
            sweep = self.service.get(sweep_id)
            trials = self.service.trials(sweep_id)
            curves = self.service.curves(sweep_id)
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(TrialsLoaded(seq, sweep, trials, curves))

    def on_sweeps_loaded(self, message: SweepsLoaded) -> None:
        if self.stale("sweeps", message.seq):
            return
        self.sweeps = {s.id: s for s in message.sweeps}
        rows = view.sweep_rows(message.sweeps)
        keep = None if self.selected is None else str(self.selected)
        fill(self.sweeps_table, [(r.key, sweep_cells(r)) for r in rows], keep=keep)
        self._show_summary(message.sweeps)
        key = cursor_key(self.sweeps_table)
        self.selected = None if key is None else int(key)
        if self.selected is None:
            self.reading = False
            self._show_trials(None, [], {})
        else:
            self.request_trials(self.selected)

    def on_trials_loaded(self, message: TrialsLoaded) -> None:
        if self.stale("trials", message.seq) or message.sweep.id != self.selected:
            return
        self.reading = False
        self._show_trials(message.sweep, message.trials, message.curves)

    # -- showing ----------------------------------------------------------------------------

    def _show_summary(self, sweeps: list[Sweep]) -> None:
        summary = self.query_one("#summary", Static)
        if not sweeps:
            summary.update(EMPTY)
            return
        live = sum(1 for s in sweeps if s.state in LIVE_SWEEP_STATES)
        summary.update(
            f"{len(sweeps)} sweep{'' if len(sweeps) == 1 else 's'} · {live} running  ·  "
            "✔ complete ✂ pruned ✘ failed ▶ running · ★ best  ·  Enter: trials, then a trial's run"
        )

    def _show_trials(
        self, sweep: Sweep | None, trials: list[Trial], curves: dict[int, list[tuple[int, float | None]]]
    ) -> None:
        self.trials, self.curves = trials, curves
        self.best = None if sweep is None else sweep.best_trial
        table = self.trials_table
        rows = view.trial_rows(trials, self.best)
        fill(table, [(r.key, trial_cells(r)) for r in rows], keep=cursor_key(table))
        if sweep is None:
            table.border_title = "trials"
        else:
            table.border_title = fmt.inert(f"trials of {sweep.name}")
        self._show_curves(sweep)
        self._show_analysis(sweep)

    def _show_curves(self, sweep: Sweep | None) -> None:
        plot = self.query_one(TrialCurves)
        if sweep is None:
            plot.show([], title="", metric="")
            return
        key = cursor_key(self.trials_table)
        self.trials_table.border_subtitle = fmt.inert(self._trial_note(key, sweep))  # a trial's message
        selected = None if key is None or not self.trials_table.has_focus else int(key)
        curves = view.trial_curves(self.curves, self.trials, self.best, selected)
        plot.show(curves, title=f"{sweep.spec.metric} per step · {sweep.name}", metric=sweep.spec.metric)

    def _trial_note(self, key: str | None, sweep: Sweep) -> str:
        """The highlighted trial's message, job and run (the sweep's message before any trial)."""
        trial = next((t for t in self.trials if str(t.number) == key), None)
        if trial is None:
            return view.clip(sweep.message or "", 60)
        parts = [f"trial {trial.number}"]
        if trial.message:
            parts.append(view.clip(trial.message, 36))
        if trial.job_id is not None:
            parts.append(f"job {trial.job_id}")
        if trial.run_id is not None:
            parts.append(f"run #{trial.run_id}")
        return " · ".join(parts)

    # -- analysis ---------------------------------------------------------------------------

    def show_curves_pane(self) -> None:
        self.action_show_view("curves")

    def show_importance_pane(self) -> None:
        self.action_show_view("importance")

    def show_params_pane(self) -> None:
        self.action_show_view("params")

    def show_coords_pane(self) -> None:
        self.action_show_view("coords")

    def action_show_view(self, pane: str) -> None:
        """Switch the right pane; ``p`` while showing a parameter steps to the next one."""
        if pane == "params" and self.pane == "params":
            self.param_index += 1
        self.pane = pane
        curves = self.query_one(TrialCurves)
        analysis = self.query_one(SweepAnalysis)
        curves.display = pane == "curves"
        analysis.display = pane != "curves"
        self._show_analysis(self.sweeps.get(self.selected) if self.selected is not None else None)

    def _show_analysis(self, sweep: Sweep | None) -> None:
        if self.pane == "curves":
            return
        plot = self.query_one(SweepAnalysis)
        if sweep is None:
            plot.border_title = "analysis"
            plot.show_importance(view.Importance({}, "select a sweep"))
            return
        metric = sweep.spec.metric
        if self.pane == "importance":
            plot.border_title = fmt.inert(f"parameter importance · {sweep.name}")
            self._show_importance(sweep, plot)
        elif self.pane == "params":
            names = view.param_names(self.trials)
            if not names:
                plot.border_title = fmt.inert(f"parameter vs {metric} · {sweep.name}")
                plot.show_points(None, metric, "no trial has parameters yet")
                return
            name = names[self.param_index % len(names)]
            plot.border_title = fmt.inert(
                f"{name} vs {metric} · {sweep.name} · p: next ({self.param_index % len(names) + 1}/{len(names)})"
            )
            plot.show_points(view.param_points(name, self.trials, self.curves, self.best), metric)
        else:
            plot.border_title = fmt.inert(f"parallel coordinates · {sweep.name}")
            axes, lines = view.parallel_lines(self.trials, self.curves, self.best)
            plot.show_lines(axes, lines, metric)

    def _show_importance(self, sweep: Sweep, plot: SweepAnalysis) -> None:
        """Computed once per set of finished trials (fANOVA takes a while), in a worker."""
        note = view.importance_note(self.trials)
        if note is not None:
            plot.show_importance(view.Importance({}, note))
            return
        key = (sweep.id, tuple(t.number for t in view.finished(self.trials)))
        if key == self.importance_key and self.importance is not None:
            plot.show_importance(self.importance)
            return
        if key != self.importance_key:
            self.importance_key, self.importance = key, None
            plot.show_importance(view.Importance({}, "computing parameter importance…"))
            self.fetch_importance(self.ask("importance"), key, list(self.trials), sweep.spec.direction)

    @work(thread=True, group="importance")
    def fetch_importance(
        self, seq: int, key: tuple[int, tuple[int, ...]], trials: list[Trial], direction: str
    ) -> None:
        try:
            importance = view.param_importances(trials, direction)
        except Exception as exc:  # an analysis that fails must not take the TUI down with it
            importance = view.Importance({}, f"no importance: {type(exc).__name__}: {exc}")
        self.post_message(ImportanceLoaded(seq, key, importance))

    def on_importance_loaded(self, message: ImportanceLoaded) -> None:
        if self.stale("importance", message.seq) or message.key != self.importance_key:
            return
        self.importance = message.importance
        if self.pane == "importance" and self.selected == message.key[0]:
            self.query_one(SweepAnalysis).show_importance(message.importance)

    @on(DataTable.RowHighlighted, "#sweeps")
    def sweep_highlighted(self) -> None:
        key = cursor_key(self.sweeps_table)
        sweep_id = None if key is None else int(key)
        if sweep_id is not None and sweep_id != self.selected:
            self.selected = sweep_id
            self._show_trials(None, [], {})
            self.request_trials(sweep_id)

    @on(DataTable.RowHighlighted, "#trials")
    def trial_highlighted(self) -> None:
        self._show_curves(self.sweeps.get(self.selected) if self.selected is not None else None)

    @on(DataTable.RowSelected, "#sweeps")
    def sweep_selected(self) -> None:
        self.action_focus_trials()

    def action_focus_trials(self) -> None:
        self.trials_table.focus()
        self.trial_highlighted()

    @on(DataTable.RowSelected, "#trials")
    def trial_selected(self) -> None:
        key = cursor_key(self.trials_table)
        trial = next((t for t in self.trials if str(t.number) == key), None)
        if trial is None:
            return
        if trial.run_id is None:
            self.notify(f"trial {trial.number} has no run yet", title="Sweeps")
            return
        RunDetailScreen.open(self.app, trial.run_id)

    # -- stopping ---------------------------------------------------------------------------

    def action_stop_sweep(self) -> None:
        sweep = self.sweeps.get(self.selected) if self.selected is not None else None
        if sweep is None:
            self.notify("Select a sweep first.", title="Stop sweep", severity="warning")
            return
        if sweep.state not in LIVE_SWEEP_STATES:
            self.notify(
                f"sweep {sweep.id} already ended ({sweep.state})", title="Stop sweep", severity="warning"
            )
            return
        running = sweep.counts.get("running", 0)

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.stop_sweep(sweep.id)

        self.app.push_screen(
            ConfirmDialog(
                "Stop sweep",
                f"sweep {sweep.id} {sweep.name}: {sweep.state} → stopped",
                f"no more trials are asked; {running} running trial{'' if running == 1 else 's'} cancelled",
                confirm_label="Stop sweep",
            ),
            answered,
        )

    @work(thread=True, group="stop")
    def stop_sweep(self, sweep_id: int) -> None:
        try:
            sweep = self.service.stop(sweep_id)
        except MlboxError as exc:
            self.fail(exc)
            self.post_message(SweepStopped(None))
            return
        self.post_message(SweepStopped(sweep))

    def on_sweep_stopped(self, message: SweepStopped) -> None:
        if message.sweep is not None:
            self.notify(f"sweep {message.sweep.id}: {message.sweep.state}", title="Sweeps")
        self.reload()
