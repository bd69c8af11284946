"""The Notebooks view: JupyterLab servers with their state, GPUs, URL (with its token) and idle time.

Every notebook-service call runs in a thread worker that answers with a
message; the list is re-read every ``refresh_s``, so a server's URL appears
once it is up and a culled one shows as culled. ``n`` starts a server (asking
how many GPUs it holds), ``s`` stops one after a confirmation, ``y`` copies
the selected URL to the clipboard (through the terminal; it is shown too,
for terminals that do not pass copies on).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Static

from mlbox.notebooks.schemas import ACTIVE_STATES, Notebook
from mlbox.notebooks.service import NotebookService
from mlbox.scheduler.schemas import Job
from mlbox.store.errors import MlboxError, NotFound
from mlbox.textsafe import visible
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.views import format as fmt
from mlbox.tui.views import notebooks as view
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
from mlbox.tui.widgets.gpu_prompt import GpuPrompt
from mlbox.tui.widgets.table_rows import cursor_key, fill

NOTEBOOKS_SHOWN = 100
COLUMNS = ("id", "state", "gpus", "idle", "up", "job", "note")
EMPTY = "no notebook servers yet: press n to start one (or  mlbox notebook start --gpus 1)"


def row_cells(row: view.NotebookRow) -> tuple[Text, ...]:
    ended = row.state not in ACTIVE_STATES
    dim = "dim" if ended else ""
    return (
        Text(str(row.id), justify="right", style="bold"),
        Text(
            f"{view.STATE_ICONS.get(row.state, '?')} {row.state}", style=view.STATE_STYLES.get(row.state, "")
        ),
        Text(row.gpus, style=dim or "#4ea1ff"),
        Text(row.idle, justify="right", style="bold #d29922" if row.idle == "busy" else dim),
        Text(row.up, justify="right", style=dim),
        Text(str(row.job_id), justify="right", style="dim"),
        fmt.inert(row.note if len(row.note) <= 50 else row.note[:49] + "…", "dim"),
    )


class NotebooksLoaded(Message):
    def __init__(
        self, seq: int, notebooks: list[Notebook], jobs: dict[int, Job], gpus: tuple[int, int], now: float
    ) -> None:
        super().__init__()
        self.seq = seq
        self.notebooks = notebooks
        self.jobs = jobs
        self.gpus = gpus
        """(GPUs there are, GPUs free now)."""
        self.now = now


class NotebookChanged(Message):
    def __init__(self, note: str) -> None:
        super().__init__()
        self.note = note


class NotebooksScreen(MlboxScreen):
    SECTION = "notebooks"
    TITLE = "Notebooks"
    DEFAULT_CSS = """
    NotebooksScreen #summary {
        color: $text-muted;
        padding: 0 2;
        height: 1;
    }
    NotebooksScreen #notebooks {
        height: 1fr;
        margin: 0 1;
        border: round $panel-lighten-2;
    }
    NotebooksScreen #notebooks:focus {
        border: round $accent;
    }
    NotebooksScreen #detail {
        height: auto;
        margin: 0 1;
        padding: 0 1;
        border: round $panel-lighten-2;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "start_notebook", "Start"),
        Binding("s", "stop_notebook", "Stop"),
        Binding("y", "copy_url", "Copy URL"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.notebooks: dict[int, Notebook] = {}
        self.rows: dict[str, view.NotebookRow] = {}
        self.gpus = (0, 0)
        self.clock: Callable[[], float] = time.time
        """The clock idle times are computed with; a snapshot test fixes it."""

    @property
    def service(self) -> NotebookService:
        return self.ctx.services.notebooks

    def compose_body(self) -> ComposeResult:
        yield Static("reading the notebook servers…", id="summary")
        yield DataTable(id="notebooks", cursor_type="row", zebra_stripes=True)
        yield Static("", id="detail")

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#notebooks", DataTable)

    def on_mount(self) -> None:
        for label in COLUMNS:
            self.table.add_column(
                Text(label, justify="right" if label in ("id", "idle", "up", "job") else "left"), key=label
            )
        self.table.border_title = "notebook servers"
        self.query_one("#detail", Static).border_title = "selected"
        self.table.focus()
        self.read_first()
        self.set_interval(self.ctx.refresh_s, self.poll)

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Start notebook", "Start a JupyterLab server as a job", self.action_start_notebook
        )
        yield SystemCommand("Stop notebook", "Stop the selected server", self.action_stop_notebook)
        yield SystemCommand("Copy notebook URL", "Copy the selected server's URL", self.action_copy_url)

    # -- fetching ---------------------------------------------------------------------------

    def reload(self) -> None:
        self.reading = True
        self.fetch(self.ask("notebooks"))

    @work(thread=True, group="notebooks")
    def fetch(self, seq: int) -> None:
        scheduler = self.ctx.services.scheduler
        try:
            notebooks = self.service.list_notebooks(limit=NOTEBOOKS_SHOWN)
            jobs: dict[int, Job] = {}
            for nb in notebooks:
                if nb.state in ACTIVE_STATES:
                    try:
                        jobs[nb.job_id] = scheduler.get(nb.job_id)
                    except NotFound:  # the notebook pass marks it failed
                        continue
            board = scheduler.gpu_board()
            gpus = (len(board), sum(1 for g in board if g.lease is None))
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(NotebooksLoaded(seq, notebooks, jobs, gpus, self.clock()))

    def on_notebooks_loaded(self, message: NotebooksLoaded) -> None:
        if self.stale("notebooks", message.seq):
            return
        self.reading = False
        self.gpus = message.gpus
        self.notebooks = {nb.id: nb for nb in message.notebooks}
        rows = view.notebook_rows(message.notebooks, message.jobs, message.now)
        self.rows = {r.key: r for r in rows}
        fill(self.table, [(r.key, row_cells(r)) for r in rows], keep=cursor_key(self.table))
        summary = self.query_one("#summary", Static)
        if not rows:
            summary.update(EMPTY)
        else:
            live = sum(1 for nb in message.notebooks if nb.state in ACTIVE_STATES)
            total, free = message.gpus
            summary.update(
                f"{live} server{'' if live == 1 else 's'} up or starting · {len(rows)} in all"
                f"  ·  GPUs {free} of {total} free  ·  idle: since the last browser, kernel or GPU activity"
            )
        self._show_detail()

    # -- showing ----------------------------------------------------------------------------

    def current(self) -> view.NotebookRow | None:
        key = cursor_key(self.table)
        return None if key is None else self.rows.get(key)

    def _show_detail(self) -> None:
        detail = self.query_one("#detail", Static)
        row = self.current()
        if row is None:
            detail.update(Text("n: start a JupyterLab server", style="dim"))
            return
        nb = self.notebooks[row.id]
        text = Text.assemble(
            ("URL   ", "bold"),
            (
                visible(row.url),
                "underline #4ea1ff" if nb.url is not None and nb.state in ACTIVE_STATES else "dim",
            ),
            "\n",
            ("root  ", "bold"),
            visible(nb.root_dir),
            "\n",
            ("job   ", "bold"),
            f"{nb.job_id} · idle limit {view.fmt.duration(nb.idle_timeout_s)}",
            visible(f" · {nb.message}") if nb.message else "",
        )
        detail.update(text)
        detail.border_title = f"notebook {nb.id}"
        detail.border_subtitle = "y: copy URL · s: stop" if nb.state in ACTIVE_STATES else ""

    @on(DataTable.RowHighlighted, "#notebooks")
    def highlighted(self) -> None:
        self._show_detail()

    # -- start, stop, copy ------------------------------------------------------------------

    def action_start_notebook(self) -> None:
        total, free = self.gpus

        def answered(gpus: int | None) -> None:
            if gpus is not None:
                self.start(gpus)

        self.app.push_screen(GpuPrompt(total, free), answered)

    @work(thread=True, group="change")
    def start(self, gpus: int) -> None:
        try:
            nb = self.service.start(gpus=gpus)
        except MlboxError as exc:
            self.fail(exc)
            self.post_message(NotebookChanged(""))
            return
        held = f"{gpus} GPU{'' if gpus == 1 else 's'}" if gpus else "no GPU"
        self.post_message(NotebookChanged(f"notebook {nb.id} starting (job {nb.job_id}, {held})"))

    def action_stop_notebook(self) -> None:
        row = self.current()
        if row is None:
            self.notify("Select a notebook first.", title="Stop", severity="warning")
            return
        nb = self.notebooks[row.id]
        if nb.state not in ACTIVE_STATES:
            self.notify(f"notebook {nb.id} already ended ({nb.state})", title="Stop", severity="warning")
            return
        gpus = f"; its {row.gpus} GPU(s) are freed" if nb.gpus else ""

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.stop(nb.id)

        self.app.push_screen(
            ConfirmDialog(
                "Stop notebook",
                f"notebook {nb.id}: {nb.state} → stopped",
                f"its server and kernels end (unsaved work is lost){gpus}",
                confirm_label="Stop",
            ),
            answered,
        )

    @work(thread=True, group="change")
    def stop(self, notebook_id: int) -> None:
        try:
            nb = self.service.stop(notebook_id)
        except MlboxError as exc:
            self.fail(exc)
            self.post_message(NotebookChanged(""))
            return
        self.post_message(NotebookChanged(f"notebook {nb.id}: {nb.state}"))

    def on_notebook_changed(self, message: NotebookChanged) -> None:
        if message.note:
            self.notify(message.note, title="Notebooks")
        self.reload()

    def action_copy_url(self) -> None:
        row = self.current()
        nb = None if row is None else self.notebooks.get(row.id)
        if nb is None or nb.url is None or nb.state not in ACTIVE_STATES:
            self.notify("No URL yet: select a running notebook.", title="Copy URL", severity="warning")
            return
        self.app.copy_to_clipboard(nb.url)
        self.notify(nb.url, title="URL copied")
