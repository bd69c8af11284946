"""The Jobs screen: the scheduler's queue, the GPU board and a live tail of the selected job's log.

Every scheduler call runs in a thread worker that answers with a message.
The queue and the board are re-read every ``refresh_s``; the selected job's
log every ``live_s`` while following, by offset, so each poll reads only what
was written since (`mlbox.tui.views.jobs.LogTail` keeps the last lines). A job
is cancelled only after the user confirms it in a modal; retry queues a
finished job again. Either way the queue is re-read at once, so what is shown
is what the jobs table holds. The screen only reads and writes rows: the
appliance's scheduler loop (embedded or beside) is what starts and stops
processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Static

from mlbox.scheduler.schemas import Attempt, GpuStatus, Job
from mlbox.scheduler.service import SchedulerService
from mlbox.store.errors import MlboxError
from mlbox.tui.messages import ServiceFailed
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.screens.run_detail import RunDetailScreen
from mlbox.tui.views import format as fmt
from mlbox.tui.views import jobs as view
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
from mlbox.tui.widgets.gpu_board import GpuBoard
from mlbox.tui.widgets.job_detail import JobDetailDialog
from mlbox.tui.widgets.log_tail import LogTailView
from mlbox.tui.widgets.table_rows import cursor_key, fill

JOBS_SHOWN = 200
TAIL_LINES = 500
TAIL_BYTES = 64 * 1024
"""On first showing a job's log, start this far before its end: a long log's tail, not its start."""
READS_PER_POLL = 4
"""Chunks of 1 MiB read per poll at most: a job writing fast never stalls the screen."""
COLUMNS = ("id", "name", "owner", "state", "prio", "gpus", "attempt", "age", "ran", "note")
RIGHT = ("id", "prio", "attempt", "age", "ran")
EMPTY = "no jobs yet: submit one with  mlbox jobs submit -- python train.py  (or mlbox.submit(...))"


def state_text(state: str) -> Text:
    return Text(f"{view.STATE_ICONS.get(state, '?')} {state}", style=view.STATE_STYLES.get(state, ""))


def row_cells(row: view.JobRow) -> tuple[Text | str, ...]:
    dim = "dim" if row.state in ("succeeded", "cancelled", "pruned") else ""
    return (
        Text(str(row.id), justify="right", style="bold"),
        fmt.inert(view.clip(row.name, 28), style=dim),
        fmt.inert(
            row.owner,
            style="#a371f7" if row.owner.startswith("sweep") else "#3fb950" if row.owner != "-" else "dim",
        ),
        state_text(row.state),
        Text(str(row.priority), justify="right", style=dim),
        Text(
            row.gpus, style="#4ea1ff" if row.state in ("running", "stopping") and row.gpus != "cpu" else dim
        ),
        Text(row.attempt, justify="right", style=dim),
        Text(row.age, justify="right", style=dim),
        Text(row.ran, justify="right", style=dim),
        fmt.inert(row.note, style="dim"),
    )


# -- messages -------------------------------------------------------------------------------


class JobsLoaded(Message):
    def __init__(
        self,
        seq: int,
        jobs: list[Job],
        board: list[GpuStatus],
        now: float,
        cluster: dict[str, dict[str, float]] | None = None,
    ) -> None:
        super().__init__()
        self.seq = seq
        self.jobs = jobs
        self.board = board
        self.cluster = cluster
        """The Ray cluster's resources when the executor is Ray (shown in place of the GPU board)."""
        self.now = now


class LogRead(Message):
    """Bytes of a job's log from ``start`` up to ``next_offset``; ``start`` > 0 on a first read
    that skipped to the log's end."""

    def __init__(self, job_id: int, generation: int, start: int, data: bytes, next_offset: int) -> None:
        super().__init__()
        self.job_id = job_id
        self.generation = generation
        self.start = start
        self.data = data
        self.next_offset = next_offset


class JobChanged(Message):
    def __init__(self, note: str) -> None:
        super().__init__()
        self.note = note


class DetailRead(Message):
    def __init__(self, job: Job, attempts: list[Attempt], now: float) -> None:
        super().__init__()
        self.job = job
        self.attempts = attempts
        self.now = now


# -- the screen -----------------------------------------------------------------------------


class JobsScreen(MlboxScreen):
    SECTION = "jobs"
    TITLE = "Jobs"
    DEFAULT_CSS = """
    JobsScreen #summary {
        color: $text-muted;
        padding: 0 2;
        height: 1;
    }
    JobsScreen #jobs {
        height: 1fr;
        min-height: 6;
        margin: 0 1;
        border: round $panel-lighten-2;
    }
    JobsScreen #jobs:focus {
        border: round $accent;
    }
    JobsScreen #lower {
        height: 14;
        margin: 0 1;
    }
    JobsScreen #gpus {
        width: 60;
        max-width: 50%;
        margin-right: 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel_job", "Cancel"),
        Binding("r", "retry_job", "Retry"),
        Binding("l", "toggle_follow", "Follow log"),
        Binding("enter", "details", "Details", show=True, priority=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[int, Job] = {}
        self.order: list[int] = []
        self.follow = True
        self.tail = view.LogTail(TAIL_LINES)
        self.tail_job: int | None = None
        self.tail_generation = 0
        self.reading_log = False
        self.clock: Callable[[], float] = time.time
        """The clock ages are computed with; a snapshot test fixes it."""

    @property
    def scheduler(self) -> SchedulerService:
        return self.ctx.services.scheduler

    def compose_body(self) -> ComposeResult:
        yield Static("reading the jobs…", id="summary")
        yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="lower"):
            yield GpuBoard(id="gpus")
            yield LogTailView(max_lines=TAIL_LINES, id="log")

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#jobs", DataTable)

    @property
    def log_view(self) -> LogTailView:
        return self.query_one("#log", LogTailView)

    def on_mount(self) -> None:
        table = self.table
        for label in COLUMNS:
            table.add_column(Text(label, justify="right" if label in RIGHT else "left"), key=label)
        table.border_title = "jobs"
        self.log_view.set_title(None, follow=self.follow)
        table.focus()
        self.read_first()
        self.set_interval(self.ctx.refresh_s, self.poll)
        self.set_interval(self.ctx.live_s, self.poll_log)

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Cancel job", "Stop the selected job (after a confirmation)", self.action_cancel_job
        )
        yield SystemCommand("Retry job", "Queue the selected finished job again", self.action_retry_job)
        yield SystemCommand("Follow log", "Pause or resume the live log tail", self.action_toggle_follow)
        yield SystemCommand("Refresh jobs", "Re-read the queue and the GPUs now", self.reload)

    # -- the queue and the board ------------------------------------------------------------

    def reload(self) -> None:
        self.reading = True
        self.fetch_jobs(self.ask("jobs"))

    @work(thread=True, group="jobs")
    def fetch_jobs(self, seq: int) -> None:
        try:
            jobs = self.scheduler.list_jobs(limit=JOBS_SHOWN)
            cluster = self.scheduler.cluster()
            board = self.scheduler.gpu_board() if cluster is None else []
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(JobsLoaded(seq, jobs, board, self.clock(), cluster))

    def on_service_failed(self, message: ServiceFailed) -> None:
        """A refused log read ends too (`MlboxScreen` ends the loading), so the tail goes on."""
        self.reading_log = False

    def on_jobs_loaded(self, message: JobsLoaded) -> None:
        if self.stale("jobs", message.seq):
            return
        self.reading = False
        self.jobs = {j.id: j for j in message.jobs}
        self.order = [j.id for j in message.jobs]
        rows = view.job_rows(message.jobs, message.now)
        table = self.table
        keep = cursor_key(table)
        fill(table, [(r.key, row_cells(r)) for r in rows], keep=keep)
        if message.cluster is None:
            self.query_one(GpuBoard).show(view.board_rows(message.board, message.now))
        else:
            self._show_cluster(message.cluster)
        self._show_summary(message.jobs)
        self._select_log(self.current_job())

    def _show_cluster(self, cluster: dict[str, dict[str, float]]) -> None:
        """The Ray cluster's resources in the GPU board's place: Ray, not mlbox, places jobs there."""
        board = self.query_one(GpuBoard)
        board.border_title = "Ray cluster"
        rows = view.cluster_rows(cluster)
        if not rows:
            board.border_subtitle = ""
            board.update(Text("the Ray cluster does not answer", style="dim"))
            return
        board.border_subtitle = "free / total"
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column("resource", ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column("free", justify="right", no_wrap=True)
        table.add_column("total", justify="right", no_wrap=True)
        for name, free, total in rows:
            table.add_row(fmt.inert(name, style="bold"), Text(free), Text(total, style="dim"))
        board.update(table)

    def _show_summary(self, jobs: list[Job]) -> None:
        summary = self.query_one("#summary", Static)
        if not jobs:
            summary.update(EMPTY)
            return
        counts = " · ".join(f"{n} {state}" for state, n in view.state_counts(jobs).items())
        n = len(jobs)
        shown = f"newest {n} jobs" if n >= JOBS_SHOWN else f"{n} job{'' if n == 1 else 's'}"
        summary.update(f"{shown}: {counts}  ·  Enter: details")

    def current_job(self) -> Job | None:
        key = cursor_key(self.table)
        return None if key is None else self.jobs.get(int(key))

    @on(DataTable.RowHighlighted, "#jobs")
    def job_highlighted(self) -> None:
        self._select_log(self.current_job())

    # -- the log tail -----------------------------------------------------------------------

    def _select_log(self, job: Job | None) -> None:
        """Show ``job``'s log from now on (a fresh tail when the selection moved)."""
        job_id = None if job is None else job.id
        if job_id == self.tail_job:
            return
        self.tail_job = job_id
        self.tail_generation = self.ask("log")
        self.tail = view.LogTail(TAIL_LINES)
        log = self.log_view
        log.show([])
        log.set_title(None if job is None else f"job {job.id} {job.spec.name}", follow=self.follow)
        self.reading_log = False
        self.poll_log(force=True)

    def poll_log(self, force: bool = False) -> None:
        """Read what the selected job's log gained, unless paused or a read is under way."""
        if self.tail_job is None or self.reading_log or not (self.follow or force):
            return
        self.reading_log = True
        first = self.tail.offset == 0 and not self.tail.lines()
        self.read_log(self.tail_job, self.tail_generation, self.tail.offset, first)

    @work(thread=True, group="log")
    def read_log(self, job_id: int, generation: int, offset: int, first: bool) -> None:
        scheduler = self.scheduler
        try:
            start = offset
            if first:
                try:
                    size = os.stat(scheduler.log_path(job_id)).st_size
                except OSError:
                    size = 0
                start = max(size - TAIL_BYTES, 0)
            data, next_offset = scheduler.read_log(job_id, start)
            chunks = [data]
            for _ in range(READS_PER_POLL - 1):
                if len(data) < (1 << 20):
                    break
                data, next_offset = scheduler.read_log(job_id, next_offset)
                chunks.append(data)
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(LogRead(job_id, generation, start, b"".join(chunks), next_offset))

    def on_log_read(self, message: LogRead) -> None:
        if self.stale("log", message.generation):
            return
        self.reading_log = False
        if message.start > self.tail.offset:
            self.tail.start_at(message.start)
        if self.tail.feed(message.data, message.next_offset) or not self.log_view.shown:
            lines = self.tail.lines()
            self.log_view.show(lines if lines else ["(no output yet)"])

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        job = self.jobs.get(self.tail_job) if self.tail_job is not None else None
        self.log_view.set_title(None if job is None else f"job {job.id} {job.spec.name}", follow=self.follow)
        if self.follow:
            self.log_view.scroll_end(animate=False)
            self.poll_log()

    # -- cancel, retry, details ---------------------------------------------------------------

    def _job_or_warn(self, title: str) -> Job | None:
        job = self.current_job()
        if job is None:
            self.notify("Select a job first.", title=title, severity="warning")
        return job

    def action_cancel_job(self) -> None:
        job = self._job_or_warn("Cancel")
        if job is None:
            return
        if job.terminal:
            self.notify(f"job {job.id} already ended ({job.state})", title="Cancel", severity="warning")
            return
        if job.state == "running":
            grace = self.scheduler.settings.kill_grace_s
            detail = f"SIGTERM to its process group, SIGKILL after {grace:g} s; its GPUs are freed"
        else:
            detail = "it leaves the queue before it runs"
        if job.spec.owner is not None:
            detail += f"\nit belongs to {view.owner_label(job.spec.owner)}"

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.cancel_job(job.id)

        self.app.push_screen(
            ConfirmDialog(
                "Cancel job",
                f"job {job.id} {job.spec.name}: {view.shown_state(job)} → cancelled",
                detail,
                confirm_label="Cancel job",
            ),
            answered,
        )

    @work(thread=True, group="change")
    def cancel_job(self, job_id: int) -> None:
        try:
            job = self.scheduler.cancel(job_id)
        except MlboxError as exc:
            self.fail(exc)
            self.post_message(JobChanged(""))
            return
        self.post_message(JobChanged(f"job {job.id}: {view.shown_state(job)}"))

    def action_retry_job(self) -> None:
        job = self._job_or_warn("Retry")
        if job is None:
            return
        if not job.terminal:
            self.notify(
                f"job {job.id} is {job.state}; only a finished job can be retried",
                title="Retry",
                severity="warning",
            )
            return
        self.retry_job(job.id)

    @work(thread=True, group="change")
    def retry_job(self, job_id: int) -> None:
        try:
            job = self.scheduler.retry(job_id)
        except MlboxError as exc:
            self.fail(exc)
            self.post_message(JobChanged(""))
            return
        self.post_message(JobChanged(f"job {job.id} queued again (attempt {job.attempt + 1} next)"))

    def on_job_changed(self, message: JobChanged) -> None:
        if message.note:
            self.notify(message.note, title="Jobs")
        self.tail_job = None  # the log starts afresh: a retried job appends to it
        self.reload()

    def action_details(self) -> None:
        job = self._job_or_warn("Details")
        if job is not None:
            self.read_detail(job.id)

    @on(DataTable.RowSelected, "#jobs")
    def job_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_details()

    @work(thread=True, group="detail")
    def read_detail(self, job_id: int) -> None:
        try:
            job = self.scheduler.get(job_id)
            attempts = self.scheduler.attempts(job_id)
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(DetailRead(job, attempts, self.clock()))

    def on_detail_read(self, message: DetailRead) -> None:
        job = message.job
        rows = view.job_details(job, message.attempts, message.now)

        def answered(choice: str | None) -> None:
            if choice == "run" and job.run_id is not None:
                RunDetailScreen.open(self.app, job.run_id)

        self.app.push_screen(
            JobDetailDialog(f"job {job.id} · {job.spec.name}", rows, has_run=job.run_id is not None), answered
        )
