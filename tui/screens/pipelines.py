"""The Pipelines screen: runs, the selected run's DAG with live step states, a step's log.

Every service call runs in a thread worker that answers with a message; the runs are re-read
every ``refresh_s``, so a running pipeline's boxes change colour as its steps end. ``r``
retries the selected failed step (or the failed part of the run) and ``c`` cancels the run,
each after a confirmation. ``n`` starts a run of a known pipeline (a prompt for the pipeline
and its parameters, then a confirmation); without an appliance up, this process drives it.
``t`` shows the triggers (cron, watched folders, aliases, datasets, training sets) in place of
the DAG, and again the DAG.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, ScrollableContainer
from textual.message import Message
from textual.widgets import DataTable, Static

from mlbox.pipelines.machine import DEAD
from mlbox.pipelines.schemas import PipelineRun, Schedule
from mlbox.pipelines.service import PipelineService
from mlbox.store.errors import MlboxError
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.views import format as fmt
from mlbox.tui.views import pipelines as view
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
from mlbox.tui.widgets.dag import DagView
from mlbox.tui.widgets.dag_run_prompt import RunPrompt
from mlbox.tui.widgets.table_rows import cursor_key, fill

RUNS_SHOWN = 100
LOG_TAIL = 4000
EMPTY = "no pipeline runs yet: start one with  mlbox pipelines run package.module:name"


class RunsLoaded(Message):
    def __init__(
        self,
        seq: int,
        runs: list[PipelineRun],
        detail: PipelineRun | None,
        now: float,
        schedules: list[Schedule] | None = None,
        refs: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.seq = seq
        self.runs = runs
        self.detail = detail
        self.now = now
        self.schedules = schedules or []
        self.refs = refs or []


class LogLoaded(Message):
    def __init__(self, seq: int, node: str, text: str) -> None:
        super().__init__()
        self.seq = seq
        self.node = node
        self.text = text


class RunChanged(Message):
    def __init__(self, note: str) -> None:
        super().__init__()
        self.note = note


class PipelinesScreen(MlboxScreen):
    SECTION = "pipelines"
    TITLE = "Pipelines"
    DEFAULT_CSS = """
    PipelinesScreen #summary { color: $text-muted; padding: 0 2; height: 1; }
    PipelinesScreen #runs { height: 20%; min-height: 5; margin: 0 1; border: round $panel-lighten-2; }
    PipelinesScreen #runs:focus, PipelinesScreen #steps:focus { border: round $accent; }
    PipelinesScreen #dag-box { height: 1fr; margin: 0 1; border: round $panel-lighten-2; }
    PipelinesScreen #lower { height: 25%; min-height: 7; }
    PipelinesScreen #steps { width: 1fr; margin: 0 0 0 1; border: round $panel-lighten-2; }
    PipelinesScreen #log-box { width: 1fr; margin: 0 1 0 0; border: round $panel-lighten-2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "retry", "Retry"),
        Binding("c", "cancel_run", "Cancel"),
        Binding("n", "new_run", "New run"),
        Binding("t", "triggers", "Triggers"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, PipelineRun] = {}
        self.detail: PipelineRun | None = None
        self.step_keys: dict[str, str] = {}
        self.clock: Callable[[], float] = time.time
        self.schedules: list[Schedule] = []
        self.refs: list[str] = []
        self.showing_triggers = False
        """The clock running steps' durations are computed with; a snapshot test fixes it."""

    @property
    def service(self) -> PipelineService:
        return self.ctx.services.pipelines

    def compose_body(self) -> ComposeResult:
        yield Static("reading the pipeline runs…", id="summary")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        with ScrollableContainer(id="dag-box"):
            yield DagView("", id="dag")
        with Horizontal(id="lower"):
            yield DataTable(id="steps", cursor_type="row")
            with ScrollableContainer(id="log-box"):
                yield Static("", id="log")

    @property
    def runs_table(self) -> DataTable[Any]:
        return self.query_one("#runs", DataTable)

    @property
    def steps_table(self) -> DataTable[Any]:
        return self.query_one("#steps", DataTable)

    def on_mount(self) -> None:
        for label in ("id", "pipeline", "state", "trigger", "partition", "created"):
            self.runs_table.add_column(Text(label, justify="right" if label == "id" else "left"), key=label)
        for label in ("step", "state", "took", "try", "note"):
            self.steps_table.add_column(
                Text(label, justify="right" if label in ("took", "try") else "left"), key=label
            )
        self.runs_table.border_title = "runs"
        self.query_one("#dag-box").border_title = "DAG"
        self.steps_table.border_title = "steps"
        self.query_one("#log-box").border_title = "log"
        self.runs_table.focus()
        self.read_first()
        self.set_interval(self.ctx.refresh_s, self.poll)

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Retry pipeline step", "Retry the selected failed step or run", self.action_retry)
        yield SystemCommand("Cancel pipeline run", "Cancel the selected pipeline run", self.action_cancel_run)
        yield SystemCommand(
            "Start pipeline run", "Start a run of a pipeline, with parameters", self.action_new_run
        )
        yield SystemCommand("Pipeline triggers", "Show the schedules and triggers", self.action_triggers)

    # -- fetching ---------------------------------------------------------------------------

    def selected_run_id(self) -> int | None:
        key = cursor_key(self.runs_table)
        run = None if key is None else self.runs.get(key)
        return None if run is None else run.id

    def reload(self) -> None:
        self.reading = True
        self.fetch(self.ask("runs"), self.selected_run_id())

    @work(thread=True, group="pipelines")
    def fetch(self, seq: int, run_id: int | None) -> None:
        try:
            runs = self.service.list_runs(limit=RUNS_SHOWN)
            if run_id is None and runs:
                run_id = runs[0].id
            detail = None if run_id is None else self.service.get_run(run_id)
            schedules = self.service.schedules()
            refs = self.service.known_refs()
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(RunsLoaded(seq, runs, detail, self.clock(), schedules, refs))

    def on_runs_loaded(self, message: RunsLoaded) -> None:
        if self.stale("runs", message.seq):
            return
        self.reading = False
        self.runs = {f"r{r.id}": r for r in message.runs}
        rows = view.run_rows(message.runs)
        fill(
            self.runs_table,
            [
                (
                    r.key,
                    (
                        Text(str(r.id), justify="right", style="bold"),
                        fmt.inert(r.pipeline),
                        Text(
                            f"{view.RUN_MARKS.get(r.state, '?')} {r.state}",
                            style=view.STATE_STYLES.get(r.state, ""),
                        ),
                        fmt.inert(r.trigger, "dim"),
                        fmt.inert(r.partition, "dim"),
                        Text(r.created, style="dim"),
                    ),
                )
                for r in rows
            ],
            keep=cursor_key(self.runs_table),
        )
        self.query_one("#summary", Static).update(view.summary(message.runs) or EMPTY)
        self.detail = message.detail
        self.schedules, self.refs = message.schedules, message.refs
        self._show_detail(message.now)

    def _show_detail(self, now: float) -> None:
        run = self.detail
        steps = [] if run is None else run.steps
        rows = view.step_rows(steps, now)
        self.step_keys = {r.key: r.node for r in rows}
        fill(
            self.steps_table,
            [
                (
                    r.key,
                    (
                        fmt.inert(r.node),
                        Text(view.step_mark(r.state), style=view.STATE_STYLES.get(r.state, "")),
                        Text(r.duration, justify="right"),
                        Text(str(r.attempt), justify="right", style="dim"),
                        fmt.inert(r.note if len(r.note) <= 60 else r.note[:59] + "…", "dim"),
                    ),
                )
                for r in rows
            ],
            keep=cursor_key(self.steps_table),
        )
        node = self.selected_node()
        self._show_dag(steps, node)
        if run is not None and node is not None:
            self.fetch_log(self.ask("log"), run.id, node)
        else:
            self.query_one("#log", Static).update(Text("select a step to read its log", style="dim"))

    def _show_dag(self, steps: list[Any], node: str | None) -> None:
        """The DAG of the selected run, or (``t``) the triggers in its place."""
        box = self.query_one("#dag-box")
        dag = self.query_one("#dag", DagView)
        if self.showing_triggers:
            dag.update(fmt.inert("\n".join(view.schedule_lines(self.schedules)), keep="\n"))
            box.border_title = f"triggers · {len(self.schedules)}"
            box.border_subtitle = "t: back to the DAG"
            return
        run = self.detail
        dag.show(steps, node)
        box.border_title = "DAG" if run is None else f"run {run.id} · {run.pipeline} · {run.state}"
        cached = sum(1 for s in steps if s.state == "cached")
        box.border_subtitle = f"{cached} of {len(steps)} cached" if steps else ""

    def action_triggers(self) -> None:
        self.showing_triggers = not self.showing_triggers
        self._show_dag([] if self.detail is None else self.detail.steps, self.selected_node())

    # -- starting a run ---------------------------------------------------------------------

    def action_new_run(self) -> None:
        run = self.detail
        ref = run.ref if run is not None else ""
        params = dict(run.params) if run is not None else {}

        def confirm(answer: tuple[str, dict[str, Any]] | None) -> None:
            if answer is None:
                return
            chosen, values = answer

            def answered(confirmed: bool | None) -> None:
                if confirmed:
                    self.start_run(chosen, values)

            self.app.push_screen(
                ConfirmDialog(
                    "Start run",
                    f"{chosen} → a new run",
                    f"parameters {values or '(defaults)'}; its steps run on the appliance (or here)",
                    confirm_label="Start",
                ),
                answered,
            )

        self.app.push_screen(RunPrompt(self.refs, ref, params), confirm)

    @work(thread=True, group="change")
    def start_run(self, ref: str, params: dict[str, Any]) -> None:
        try:
            run = self.service.submit(ref, params, trigger="tui")
        except MlboxError as exc:
            self.fail(exc)
            self.post_message(RunChanged(""))
            return
        self.post_message(RunChanged(f"run {run.id} of {run.pipeline} started"))
        if self.ctx.services.home.running_appliance() is None:
            self.service.wait(run.id)  # no appliance to drive it: this process does
            self.post_message(RunChanged(""))

    def selected_node(self) -> str | None:
        key = cursor_key(self.steps_table)
        return None if key is None else self.step_keys.get(key)

    @work(thread=True, group="log")
    def fetch_log(self, seq: int, run_id: int, node: str) -> None:
        try:
            text = self.service.step_log(run_id, node)
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(LogLoaded(seq, node, text[-LOG_TAIL:]))

    def on_log_loaded(self, message: LogLoaded) -> None:
        if self.stale("log", message.seq):
            return
        box = self.query_one("#log-box")
        box.border_title = f"log · {message.node}"
        self.query_one("#log", Static).update(fmt.inert(message.text or "(nothing written yet)", keep="\n"))

    @on(DataTable.RowHighlighted, "#runs")
    def run_highlighted(self) -> None:
        run_id = self.selected_run_id()
        if run_id is not None and (self.detail is None or self.detail.id != run_id):
            self.reload()

    @on(DataTable.RowHighlighted, "#steps")
    def step_highlighted(self) -> None:
        if self.detail is not None:
            self._show_dag(self.detail.steps, self.selected_node())
            node = self.selected_node()
            if node is not None:
                self.fetch_log(self.ask("log"), self.detail.id, node)

    # -- retry and cancel -------------------------------------------------------------------

    def action_retry(self) -> None:
        run = self.detail
        if run is None:
            self.notify("Select a run first.", title="Retry", severity="warning")
            return
        node = self.selected_node() if self.focused is self.steps_table else None
        states = {s.node: s.state for s in run.steps}
        if node is not None and states.get(node) not in DEAD:
            node = None  # a step with its value is not retried: the failed part is
        failed = [n for n, s in states.items() if s in ("failed", "cancelled")]
        if node is None and not failed:
            self.notify(f"run {run.id} has no failed step to retry", title="Retry", severity="warning")
            return
        what = f"step {node}" if node else f"the failed part ({', '.join(failed)})"

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.retry(run.id, node)

        self.app.push_screen(
            ConfirmDialog(
                "Retry",
                f"run {run.id}: {what} → run again",
                "steps that have their value are kept; the steps they stopped run too",
                confirm_label="Retry",
            ),
            answered,
        )

    @work(thread=True, group="change")
    def retry(self, run_id: int, node: str | None) -> None:
        try:
            self.service.retry(run_id, node)
        except MlboxError as exc:
            self.fail(exc)
            self.post_message(RunChanged(""))
            return
        self.post_message(RunChanged(f"run {run_id}: retrying {node or 'the failed part'}"))

    def action_cancel_run(self) -> None:
        run = self.detail
        if run is None or run.state not in ("queued", "running"):
            self.notify("Select a running pipeline run first.", title="Cancel", severity="warning")
            return

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.cancel(run.id)

        self.app.push_screen(
            ConfirmDialog(
                "Cancel run",
                f"run {run.id}: {run.state} → cancelled",
                "steps not started never start; running jobs are stopped",
                confirm_label="Cancel run",
            ),
            answered,
        )

    @work(thread=True, group="change")
    def cancel(self, run_id: int) -> None:
        try:
            self.service.cancel(run_id)
        except MlboxError as exc:
            self.fail(exc)
            self.post_message(RunChanged(""))
            return
        self.post_message(RunChanged(f"run {run_id} cancelled"))

    def on_run_changed(self, message: RunChanged) -> None:
        if message.note:
            self.notify(message.note, title="Pipelines")
        self.reload()
