"""The Labeling view: projects (key 9) and, on Enter, the annotator's screen for one of them.

The annotator's screen is keyboard-first: number keys choose labels, ``a``
accepts the pre-label, ``u`` undoes, ``s`` skips, ``f`` flags for review,
``c`` comments. Tasks are prefetched (claimed ahead, `LabelingSettings.prefetch`)
so the next one shows from memory the moment a label is given, while the label
is saved by a worker at once: closing the screen loses at most the task on it.
Task text is shown literally (`views.labeling`), spans highlighted, images
drawn in the terminal's graphics protocol (Kitty's or Sixel, `label_graphics`)
where it speaks one and with half-block cells everywhere else. Where the
project has a model in the loop, the model's cross-validated accuracy at each
retraining is drawn beside the task against the number of labels
(`AccuracyPlot`), so the annotator sees it grow.
"""

from __future__ import annotations

import getpass
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from mlbox.labeling.schema import LabelSchema
from mlbox.labeling.schemas import ModelAccuracy, Progress, Project, Task
from mlbox.labeling.service import LabelingService
from mlbox.store.errors import MlboxError
from mlbox.textsafe import visible
from mlbox.tui.messages import ServiceFailed
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.views import labeling as view
from mlbox.tui.widgets.accuracy_plot import AccuracyPlot
from mlbox.tui.widgets.label_graphics import GRAPHICS, picture_widget, protocol, task_picture
from mlbox.tui.widgets.label_image import file_grid, gray_grid, half_blocks
from mlbox.tui.widgets.label_prompt import LabelPrompt

COLUMNS = ("project", "tasks", "done", "%", "labels", "reviews", "schema")
EMPTY = "no labeling projects yet:  mlbox label new NAME --choices a,b  then  mlbox label import NAME FILE"


class ProjectsLoaded(Message):
    def __init__(self, seq: int, projects: list[Project]) -> None:
        super().__init__()
        self.seq = seq
        self.projects = projects


class LabelingScreen(MlboxScreen):
    SECTION = "labeling"
    TITLE = "Labeling"
    DEFAULT_CSS = """
    LabelingScreen #summary { color: $text-muted; padding: 0 2; height: 1; }
    LabelingScreen #projects { height: 1fr; margin: 0 1; border: round $panel-lighten-2; }
    LabelingScreen #projects:focus { border: round $accent; }
    LabelingScreen #detail { height: auto; max-height: 12; margin: 0 1; padding: 0 1;
        border: round $panel-lighten-2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "open_project", "Label", priority=True)]

    def __init__(self, annotator: str | None = None) -> None:
        super().__init__()
        self.annotator = annotator or ""
        self.projects: list[Project] = []

    @property
    def service(self) -> LabelingService:
        return self.ctx.services.labeling

    def compose_body(self) -> ComposeResult:
        yield Static("reading the labeling projects…", id="summary", markup=False)
        yield DataTable(id="projects", cursor_type="row", zebra_stripes=True)
        yield Static("", id="detail")

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#projects", DataTable)

    def on_mount(self) -> None:
        self.annotator = self.annotator or self.ctx.services.settings.labeling.annotator or getpass.getuser()
        for label in COLUMNS:
            self.table.add_column(
                Text(label, justify="left" if label in ("project", "schema") else "right"), key=label
            )
        self.table.border_title = "labeling projects"
        self.query_one("#detail", Static).border_title = "selected"
        self.table.focus()
        self.read_first()
        self.set_interval(self.ctx.refresh_s, self.poll)

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        self.reload()

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Label project", "Open the labeling screen on the selected project", self.action_open_project
        )

    def reload(self) -> None:
        self.reading = True
        self.read(self.ask("projects"))

    @work(thread=True, group="labeling-read")
    def read(self, seq: int) -> None:
        try:
            self.post_message(ProjectsLoaded(seq, self.service.projects()))
        except MlboxError as exc:
            self.fail(exc)

    def on_projects_loaded(self, message: ProjectsLoaded) -> None:
        if self.stale("projects", message.seq):
            return
        self.reading = False
        self.projects = message.projects
        table = self.table
        row = table.cursor_row
        table.clear()
        for p in message.projects:
            cells = view.project_row(p)
            table.add_row(
                *(
                    Text(c, justify="left" if i in (0, 6) else "right", style="bold" if i == 0 else "")
                    for i, c in enumerate(cells)
                ),
                key=p.name,
            )
        if message.projects:
            table.move_cursor(row=min(row, len(message.projects) - 1))
        total = sum(p.tasks for p in message.projects)
        done = sum(p.done for p in message.projects)
        self.query_one("#summary", Static).update(
            f"{len(message.projects)} projects · {done}/{total} tasks done · annotator {self.annotator}"
            if message.projects
            else EMPTY
        )
        self.show_detail()

    @on(DataTable.RowHighlighted)
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def selected(self) -> Project | None:
        if not self.projects:
            return None
        row = self.table.cursor_row
        return self.projects[row] if 0 <= row < len(self.projects) else None

    def show_detail(self) -> None:
        p = self.selected()
        detail = self.query_one("#detail", Static)
        if p is None:
            detail.update("")
            return
        out = Text()
        out.append(p.name, "bold")
        out.append(f"  overlap {p.overlap} · {p.label_schema.brief()}\n", "dim")
        out.append(visible(p.instructions or "no instructions") + "\n")
        out.append("Enter opens the labeling screen", "dim")
        detail.update(out)

    def action_open_project(self) -> None:
        p = self.selected()
        if p is not None:
            self.app.push_screen(AnnotateScreen(p.name, self.annotator))


# -- the annotator's screen ---------------------------------------------------------------


class Fetched(Message):
    def __init__(
        self, tasks: list[Task], progress: Progress, project: Project, history: list[ModelAccuracy]
    ) -> None:
        super().__init__()
        self.tasks = tasks
        self.progress = progress
        self.project = project
        self.history = history


class HistoryRead(Message):
    def __init__(self, history: list[ModelAccuracy]) -> None:
        super().__init__()
        self.history = history


class Saved(Message):
    def __init__(self, note: str) -> None:
        super().__init__()
        self.note = note


class Undone(Message):
    def __init__(self, task: Task | None) -> None:
        super().__init__()
        self.task = task


class AnnotateScreen(MlboxScreen):
    SECTION = "labeling"
    TITLE = "Label"
    DEFAULT_CSS = """
    AnnotateScreen #status { height: 1; padding: 0 2; }
    AnnotateScreen #instructions { height: auto; max-height: 3; padding: 0 2; color: $text-muted; }
    AnnotateScreen #work { height: 1fr; }
    AnnotateScreen #task { width: 1fr; height: 1fr; margin: 0 1; padding: 0 1; border: round $accent; }
    AnnotateScreen #picture { width: auto; height: 16; }
    AnnotateScreen #accuracy { width: 40%; min-width: 34; height: 1fr; margin: 0 1 0 0;
        border: round $panel-lighten-2; display: none; }
    AnnotateScreen #accuracy.loop { display: block; }
    AnnotateScreen #prelabel { height: 1; padding: 0 2; }
    AnnotateScreen #choices { height: 1; padding: 0 2; }
    AnnotateScreen #note { height: 1; padding: 0 2; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(str(i), f"choose({i})", show=False) for i in range(1, 10)),
        Binding("a", "accept", "Accept pre-label"),
        Binding("enter", "save_multi", "Save", show=False),
        Binding("u", "undo", "Undo"),
        Binding("s", "skip", "Skip"),
        Binding("f", "flag", "Flag"),
        Binding("c", "comment", "Comment"),
        Binding("escape", "leave", "Projects"),
        Binding("b", "add_box", "Box", show=False),
        Binding("n", "next_box_label", "Box label", show=False),
        *(
            Binding(key, f"move_box({dx}, {dy})", show=False, priority=True)
            for key, dx, dy in (("left", -1, 0), ("right", 1, 0), ("up", 0, -1), ("down", 0, 1))
        ),
        *(
            Binding(f"shift+{key}", f"resize_box({dw}, {dh})", show=False, priority=True)
            for key, dw, dh in (("left", -1, 0), ("right", 1, 0), ("up", 0, -1), ("down", 0, 1))
        ),
    ]

    def __init__(self, project: str, annotator: str) -> None:
        super().__init__()
        self.project_name = project
        self.annotator = annotator
        self.schema: LabelSchema | None = None
        self.project: Project | None = None
        """The project as the latest fetch read it (its loop settings decide whether the chart shows)."""
        self.queue: list[Task] = []
        self.current: Task | None = None
        self.shown_at = time.monotonic()
        self.given: set[int] = set()
        """Tasks labeled or skipped in this session: a prefetch that still lists them (its read came
        before the save) does not show them again."""
        self.chosen: list[str] = []
        self.boxes: list[dict[str, Any]] = []
        """Boxes drawn on the task on screen, as numbers: b adds one, arrows move it, shift+arrows
        resize it, n changes its label, Enter saves."""
        self.comment = ""
        self.progress: Progress | None = None
        self.fetching = False
        self.leaving = False
        self.claims = threading.Lock()
        """Held while tasks are claimed or given back: a read still claiming when the screen closes
        finishes before the release, and one that starts after it claims nothing."""
        self.pending = 0
        """Labels and skips still being saved (undo waits for them)."""
        self.exhausted = False
        self.shown = 0
        """Tasks shown so far (a benchmark waits on it)."""
        self.shown_perf = 0.0
        """`time.perf_counter` when the latest task was drawn (what the latency benchmark reads)."""

    @property
    def service(self) -> LabelingService:
        return self.ctx.services.labeling

    def compose_body(self) -> ComposeResult:
        yield Static(view.status_line(self.project_name, self.annotator, None), id="status")
        yield Static("", id="instructions", markup=False)
        with Horizontal(id="work"):
            with VerticalScroll(id="task"):
                if protocol() in GRAPHICS:  # the terminal speaks a graphics protocol (`label_graphics`)
                    yield picture_widget(protocol(), id="picture")
                yield Static("reading the next tasks…", id="body", markup=False)
            yield AccuracyPlot(id="accuracy")
        yield Static("", id="prelabel")
        yield Static("", id="choices")
        yield Static("", id="note", markup=False)

    def on_mount(self) -> None:
        self.query_one("#task").border_title = "task"
        self.query_one(AccuracyPlot).border_title = "model accuracy"
        self.fetch()
        self.set_interval(self.ctx.refresh_s, self.poll_accuracy)

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Accept pre-label", "Take the model's pre-label for this task", self.action_accept
        )
        yield SystemCommand("Undo label", "Take back your latest label", self.action_undo)
        yield SystemCommand("Skip task", "Pass this task to the others", self.action_skip)
        yield SystemCommand("Flag task", "Send this task to the review queue", self.action_flag)

    # -- reading --------------------------------------------------------------------------

    def fetch(self) -> None:
        if not self.fetching:
            self.fetching = True
            self.read_next(self.ctx.services.settings.labeling.prefetch)

    @work(thread=True, group="labeling-next")
    def read_next(self, n: int) -> None:
        try:
            with self.claims:
                if self.leaving:
                    return
                tasks = self.service.next_tasks(self.project_name, self.annotator, n)
            progress = self.service.progress(self.project_name, self.annotator)
            project = self.service.project(self.project_name)
            history = self.service.accuracy_history(self.project_name)
        except MlboxError as exc:
            self.fetching = False
            self.fail(exc)
            return
        self.post_message(Fetched(tasks, progress, project, history))

    def poll_accuracy(self) -> None:
        """Between labels too: a retraining job finishes on its own time."""
        self.read_history()

    @work(thread=True, group="labeling-history", exclusive=True)
    def read_history(self) -> None:
        try:
            history = self.service.accuracy_history(self.project_name)
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(HistoryRead(history))

    def on_history_read(self, message: HistoryRead) -> None:
        if self.project is not None:
            self.show_accuracy(self.project, message.history)

    def show_accuracy(self, project: Project, history: list[ModelAccuracy]) -> None:
        """The accuracy chart, shown where the project has a model in the loop (or had one)."""
        plot = self.query_one(AccuracyPlot)
        loop = bool(project.model and project.retrain_every)
        plot.set_class(bool(history) or loop, "loop")
        plot.show_history(
            history,
            empty=f"no retraining yet (every {project.retrain_every} labels)"
            if loop
            else "no retraining yet",
        )

    def on_fetched(self, message: Fetched) -> None:
        self.fetching = False
        self.project = message.project
        self.schema = message.project.label_schema
        self.progress = message.progress
        self.query_one("#instructions", Static).update(message.project.instructions)
        self.show_accuracy(message.project, message.history)
        keep = {t.id for t in self.queue}
        if self.current is not None:
            keep.add(self.current.id)
        fresh = [t for t in message.tasks if t.id not in keep and t.id not in self.given]
        self.queue.extend(fresh)
        self.exhausted = not message.tasks
        self.show_status()
        if self.current is None:
            self.advance()

    def show_status(self) -> None:
        self.query_one("#status", Static).update(
            view.status_line(self.project_name, self.annotator, self.progress)
        )

    def advance(self) -> None:
        """Show the next prefetched task (from memory); ask for more when the queue runs low."""
        self.current = self.queue.pop(0) if self.queue else None
        self.chosen = []
        self.boxes = []
        self.comment = ""
        self.shown_at = time.monotonic()
        self.render_task()
        if (
            len(self.queue) < max(1, self.ctx.services.settings.labeling.prefetch // 2)
            and not (self.exhausted and not self.queue)
        ) or self.current is None:
            self.fetch()

    def render_task(self) -> None:
        body = self.query_one("#body", Static)
        pre = self.query_one("#prelabel", Static)
        choices = self.query_one("#choices", Static)
        note = self.query_one("#note", Static)
        task = self.current
        if task is None:
            body.update(
                Text("nothing left to label here: every task has its labels (Esc goes back)", style="dim")
            )
            pre.update("")
            choices.update("")
            note.update("")
            for hidden in self.query("#picture"):
                hidden.display = False
            return
        self.shown += 1
        schema = self.schema or LabelSchema()
        self.query_one("#task").border_title = f"task {task.id}"
        pictures = self.query("#picture")
        if pictures:  # the image in the terminal's graphics protocol, its other fields below it
            picture: Any = pictures.first()
            image = task_picture(task.data)
            picture.image = image
            picture.display = image is not None
            body.update(task_view(task, schema, draw_image=image is None))
        else:
            body.update(task_view(task, schema))
        pre.update(view.prelabel_line(task.prelabel))
        choices.update(view.choices_line(schema, self.chosen))
        note.update(
            f"comment: {self.comment}"
            if self.comment
            else "u undo · s skip · f flag · c comment · Esc projects"
        )
        self.shown_perf = time.perf_counter()

    # -- keys -----------------------------------------------------------------------------

    def action_choose(self, n: int) -> None:
        task, schema = self.current, self.schema
        if task is None or schema is None:
            return
        if schema.choices:
            if n > len(schema.choices):
                return
            label = schema.choices[n - 1]
            if schema.multi:
                self.chosen = (
                    [c for c in self.chosen if c != label] if label in self.chosen else [*self.chosen, label]
                )
                self.query_one("#choices", Static).update(view.choices_line(schema, self.chosen))
                return
            self.submit({"label": label})
        elif schema.rating is not None:
            low, high = schema.rating
            if low <= n <= high:
                self.submit({"rating": n})

    def action_save_multi(self) -> None:
        if self.current is None or self.schema is None:
            return
        value: dict[str, Any] = {}
        if self.schema.multi:
            value["labels"] = list(self.chosen)
        if self.schema.boxes and self.boxes:
            value["boxes"] = [dict(b) for b in self.boxes]
        if value:
            self.submit(value)

    def _box_step(self) -> float:
        data = self.current.data if self.current is not None else {}
        size = max(float(data.get("width") or 0), float(data.get("height") or 0))
        return max(1.0, round(size / 50)) if size else 1.0

    def action_add_box(self) -> None:
        if self.current is None or self.schema is None or not self.schema.boxes:
            return
        data = self.current.data
        w = float(data.get("width") or 10)
        h = float(data.get("height") or 10)
        self.boxes.append(
            {
                "x": round(w / 4),
                "y": round(h / 4),
                "w": max(1, round(w / 2)),
                "h": max(1, round(h / 2)),
                "label": self.schema.boxes[0],
            }
        )
        self.show_boxes()

    def action_next_box_label(self) -> None:
        if self.boxes and self.schema is not None and self.schema.boxes:
            labels = self.schema.boxes
            box = self.boxes[-1]
            box["label"] = labels[(labels.index(box["label"]) + 1) % len(labels)]
            self.show_boxes()

    def action_move_box(self, dx: int, dy: int) -> None:
        if not self.boxes:
            task = self.query_one("#task", VerticalScroll)
            if dy:
                task.scroll_relative(y=dy, animate=False)
            return
        box, step = self.boxes[-1], self._box_step()
        box["x"] = max(0.0, box["x"] + dx * step)
        box["y"] = max(0.0, box["y"] + dy * step)
        self.show_boxes()

    def action_resize_box(self, dw: int, dh: int) -> None:
        if not self.boxes:
            return
        box, step = self.boxes[-1], self._box_step()
        box["w"] = max(1.0, box["w"] + dw * step)
        box["h"] = max(1.0, box["h"] + dh * step)
        self.show_boxes()

    def show_boxes(self) -> None:
        self.query_one("#note", Static).update(
            "  ".join(
                f"box {i}: {visible(b['label'])} x={b['x']:g} y={b['y']:g} w={b['w']:g} h={b['h']:g}"
                for i, b in enumerate(self.boxes, 1)
            )
            + "   (arrows move, shift+arrows resize, n label, Enter saves)"
        )

    def action_accept(self) -> None:
        if self.current is not None and self.current.prelabel is not None:
            self.submit(dict(self.current.prelabel.value), from_prelabel=True)

    def submit(self, value: dict[str, Any], *, from_prelabel: bool = False) -> None:
        task = self.current
        if task is None:
            return
        self.given.add(task.id)
        self.pending += 1
        self.save(task.id, value, self.comment, time.monotonic() - self.shown_at, from_prelabel)
        self.advance()

    @work(thread=True, group="labeling-save")
    def save(
        self, task_id: int, value: dict[str, Any], comment: str, lead: float, from_prelabel: bool
    ) -> None:
        try:
            self.service.annotate(
                task_id, self.annotator, value, comment=comment, lead_time_s=lead, from_prelabel=from_prelabel
            )
        except MlboxError as exc:
            self.given.discard(task_id)
            self.fail(exc)
            return
        finally:
            self.pending -= 1
        self.post_message(Saved(f"task {task_id} labeled"))

    def on_saved(self, message: Saved) -> None:
        if self.progress is not None:
            p = self.progress
            self.progress = Progress(p.tasks, p.done, p.mine + 1, p.labels_per_hour)
            self.show_status()

    def action_skip(self) -> None:
        task = self.current
        if task is None:
            return
        self.given.add(task.id)
        self.pending += 1
        self.skip_task(task.id, self.comment)
        self.advance()

    @work(thread=True, group="labeling-save")
    def skip_task(self, task_id: int, comment: str) -> None:
        try:
            self.service.skip(task_id, self.annotator, comment=comment)
        except MlboxError as exc:
            self.fail(exc)
        finally:
            self.pending -= 1

    def action_undo(self) -> None:
        self.undo_last()

    @work(thread=True, group="labeling-undo")
    def undo_last(self) -> None:
        deadline = time.monotonic() + 10
        while self.pending and time.monotonic() < deadline:  # the label to undo may still be saving
            time.sleep(0.005)
        try:
            task = self.service.undo(self.project_name, self.annotator)
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(Undone(task))

    def on_undone(self, message: Undone) -> None:
        task = message.task
        if task is None:
            self.notify("nothing to undo", severity="warning")
            return
        self.given.discard(task.id)
        if self.current is not None:
            self.queue.insert(0, self.current)
        self.queue = [t for t in self.queue if t.id != task.id]
        self.current = task
        self.chosen = []
        self.shown_at = time.monotonic()
        self.render_task()
        prev = next((a for a in task.annotations if a.annotator == self.annotator), None)
        self.notify(f"undone: task {task.id}" + (f" ({view.describe(prev.value)})" if prev else ""))

    def action_flag(self) -> None:
        task = self.current
        if task is None:
            return

        def done(reason: str | None) -> None:
            if reason is not None:
                self.flag_task(task.id, reason)

        self.app.push_screen(LabelPrompt(f"Flag task {task.id} for review: why?"), done)

    @work(thread=True, group="labeling-save")
    def flag_task(self, task_id: int, reason: str) -> None:
        try:
            self.service.flag(task_id, self.annotator, reason)
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(Saved(f"task {task_id} flagged"))

    def action_comment(self) -> None:
        if self.current is None:
            return

        def done(text: str | None) -> None:
            if text is not None:
                self.comment = text
                self.render_task()

        self.app.push_screen(LabelPrompt(f"Comment on task {self.current.id}", self.comment), done)

    def action_leave(self) -> None:
        self.leaving = True
        service, app = self.service, self.app

        def release() -> None:
            with self.claims:
                try:
                    service.release(self.project_name, self.annotator)
                except MlboxError as exc:
                    app.post_message(ServiceFailed(exc))  # the screen is gone: the app shows it

        # the app's worker, not the screen's: a screen cancels its workers as it closes, and one
        # not started yet would then never give the tasks back (seen once in CI)
        app.run_worker(release, thread=True, group="labeling-release")
        app.pop_screen()


def task_view(task: Task, schema: LabelSchema, *, draw_image: bool = True) -> Text:
    """The task as shown: its text with spans, its image in half blocks (unless a graphics protocol
    draws it beside: ``draw_image`` False), then its other fields."""
    data = task.data
    out = Text()
    shown: list[str] = []
    pre_spans = (task.prelabel.value.get("spans", []) if task.prelabel else []) or []
    if isinstance(data.get("text"), str):
        out.append_text(view.highlighted(data["text"], pre_spans, schema.spans))
        shown.append("text")
    if not draw_image:
        shown += ["pixels", "width", "image", "height"]
    elif isinstance(data.get("pixels"), list) and isinstance(data.get("width"), int):
        grid = gray_grid([float(v) for v in data["pixels"]], data["width"], scale=2)
        if out:
            out.append("\n")
        out.append_text(half_blocks(grid))
        shown += ["pixels", "width"]
    elif isinstance(data.get("image"), str):
        try:
            grid = file_grid(Path(data["image"]), 64, 48)
        except OSError as exc:
            out.append(f"cannot read the image: {exc}", "red")
        else:
            out.append_text(half_blocks(grid))
        shown += ["image", "width", "height"]
    rest = view.data_lines(data, skip=shown)
    if rest:
        if out:
            out.append("\n\n")
        out.append_text(rest)
    return out
