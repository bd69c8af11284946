"""One run in full: params, tags, metrics, artifacts, datasets, code and environment,
beside its metric curves: the chosen metrics overlaid on one chart, or one chart each
(``g``: a `MetricGrid`, each metric on its own y scale).

While the run is running, a timer re-reads it every ``live_s`` seconds in a
thread worker (the summaries and the chosen curves, thinned to
``max_points``), so the curves grow as the run logs; it stops once the run
ends.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import suppress
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, SelectionList, Static, TabbedContent, TabPane
from textual.widgets.selection_list import Selection

from mlbox.store.errors import MlboxError, NotFound
from mlbox.textsafe import visible
from mlbox.tracking.schemas import RunDetail
from mlbox.tracking.series import Chunk
from mlbox.tui.deleting import Deleted, confirm_then, restorable
from mlbox.tui.idle_gc import when_idle
from mlbox.tui.messages import ServiceFailed
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.views import artifact_preview
from mlbox.tui.views import format as fmt
from mlbox.tui.views.artifact_preview import Preview
from mlbox.tui.views.curves import CurveOptions
from mlbox.tui.widgets.artifact_preview import ArtifactPreview
from mlbox.tui.widgets.curve_keys import CURVE_BINDINGS, CurveKeys
from mlbox.tui.widgets.metric_grid import MetricGrid
from mlbox.tui.widgets.metric_plot import MetricPlot
from mlbox.tui.widgets.quick_table import QuickTable

EACH_DEFAULT = 4
"""One chart each with fewer than two metrics chosen (by default one is): the first this many."""
REUSED = "run-detail"
"""The name `RunDetailScreen.open` installs its screen under (kept when popped, turned to the next run)."""
TABLES = ("metrics", "params", "tags", "artifacts", "datasets", "environment")


class ArtifactRead(Message):
    def __init__(self, run_id: int, path: str, size: int, preview: Preview) -> None:
        super().__init__()
        self.run_id = run_id
        self.path = path
        self.size = size
        self.preview = preview


class DetailLoaded(Message):
    def __init__(
        self, run_id: int, detail: RunDetail, keys: list[str], series: dict[str, Chunk], defaulted: bool
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.detail = detail
        self.keys = keys
        self.series = series
        self.defaulted = defaulted
        """The worker chose ``keys`` (the user has not picked curves yet)."""


def _table(table_id: str, *columns: str) -> DataTable[str | Text]:
    table: DataTable[str | Text] = QuickTable(id=table_id, cursor_type="row", zebra_stripes=True)
    for c in columns:
        table.add_column(c, key=c)
    return table


def _fill(table: DataTable[str | Text], rows: Sequence[Sequence[str | Text]]) -> None:
    """Replace a table's rows, keeping the cursor where it was.

    Every ``str`` cell is user text (a param, a tag, a path, an environment value): it is shown
    `inert`, since DataTable would parse a ``str`` as markup."""
    row = table.cursor_row
    table.clear()
    table.add_rows([[fmt.inert(c) if isinstance(c, str) else c for c in cells] for cells in rows])
    if rows:
        table.move_cursor(row=min(row, len(rows) - 1), animate=False)


def _right(text: str) -> Text:
    return Text(text, justify="right")


def code_and_environment(detail: RunDetail) -> list[tuple[str, str]]:
    run = detail.run
    rows = [
        ("git sha", run.git_sha or "-"),
        ("git dirty", "-" if run.git_dirty is None else ("yes" if run.git_dirty else "no")),
        ("host", run.host or "-"),
        ("pid", str(run.pid) if run.pid else "-"),
    ]
    for key, value in detail.environment.items():
        rows.append((key, value if isinstance(value, str) else json.dumps(value)))
    if detail.notes:
        rows.append(("notes", detail.notes))
    return rows


class RunDetailScreen(MlboxScreen, CurveKeys):
    SECTION = "experiments"
    CSS_PATH = "run_detail.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        *CURVE_BINDINGS,
        Binding("k", "focus_keys", "Curves"),
        Binding("d,delete", "delete_run", "Delete", show=False),
    ]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.title = f"Run {run_id}"
        self.detail: RunDetail | None = None
        self.keys: list[str] = []
        self.user_picked = False
        self.live: Timer | None = None
        self.shown_rows: dict[str, list[tuple[str | Text, ...]]] = {}
        self.series: dict[str, Chunk] = {}
        """The curves last read, by metric key."""
        self.stacked = False
        """Pushed by `open` and not popped by `back` since: no other `open` may turn it."""
        self.away = False
        """Popped by `back` (and kept for the next `open`): no live re-reads, even one under way."""

    @classmethod
    def open(cls, app: App[Any], run_id: int) -> None:
        """Show run ``run_id``: on the screen an earlier `open` (or `prebuild`) built, unless a
        screen stack still holds it (another mode's) or it is still being built, then on a new one."""
        if app.is_screen_installed(REUSED):
            screen = app.get_screen(REUSED)
            if isinstance(screen, cls) and not screen.stacked and screen.is_mounted:
                screen.show_run(run_id)
                screen.stacked = True
                app.push_screen(screen)
                return
            screen = cls(run_id)
        else:
            screen = cls(run_id)
            app.install_screen(screen, REUSED)
        screen.stacked = True
        app.push_screen(screen)

    @classmethod
    def prebuild(cls, app: App[Any], run_id: int) -> None:
        """Build the screen `open` shows, off screen, before the first run is opened: composing,
        mounting and styling it is 100-200 ms of CPU, the first enter on a run's cost over a big
        home (issue 18), where turning a built one to a run is a fraction. Installed under
        `REUSED`, its CSS loaded and mounted as ``push_screen`` does it (Textual's
        ``_load_screen_css`` and ``_get_screen``), not shown, then drawn once off screen with
        run ``run_id`` (`_draw_ahead`); `open` turns it to the run opened. Nothing when one is
        installed already."""
        if app.is_screen_installed(REUSED):
            return
        screen = cls(run_id)
        screen.away = True  # not shown: `on_mount` draws it ahead, no live re-reads
        app.install_screen(screen, REUSED)
        app._load_screen_css(screen)  # before its widgets mount: styled once, by the whole CSS
        app._get_screen(screen)

    def _draw_ahead(self) -> None:
        """(`prebuild`) Lay out and draw the run read ahead once, off screen: a screen's first
        layout and the first render of its widgets (plotext's first build among them) cost about
        as much again as composing it; once drawn, the first `open` redraws what changed. Nothing
        read (the run is gone): drawn empty. The live re-read stays off (`away`). Nothing once
        opened (`open` read its run, Textual lays it out as it shows) or while the app closes
        (its widgets are being removed)."""
        if self.stacked or not self.is_attached or not self.app._running:
            return
        try:
            with suppress(MlboxError):
                self.on_detail_loaded(self.read(self.run_id, [], pick_default=True))
            self._refresh_layout(self.app.size)
            self._compositor.render_update(full=True)
        except NoMatches:  # the app is closing
            return

    def action_back(self) -> None:
        """Back to the screen below; a screen kept for the next `open` stops re-reading its run."""
        self.stacked, self.away = False, True
        if self.live is not None:
            self.live.pause()
        self.app.pop_screen()

    def show_run(self, run_id: int) -> None:
        """Turn this (popped) screen to run ``run_id`` as a new screen would show it, and read it."""
        self.workers.cancel_group(self, "detail")
        self.workers.cancel_group(self, "artifact")
        self.run_id, self.away = run_id, False
        self.title = f"Run {run_id}"
        self.detail, self.series, self.keys, self.user_picked = None, {}, [], False
        self.curve_options, self.charts_each = CurveOptions(), False
        grid = self.query_one(MetricGrid)
        if grid.plots:
            grid.show_charts({}, self.curve_options)
        for table_id in TABLES:
            self.query_one(f"#{table_id}", DataTable).move_cursor(row=0, column=0, animate=False)
        self.query_one("#info", TabbedContent).active = "tab-metrics"
        focusable = [w for w in self.query("*") if w.focusable]  # a new screen's focus: Textual's AUTO_FOCUS
        self.set_focus(focusable[0] if focusable else None)
        if self.live is None:
            self.live = self.set_interval(self.ctx.live_s, self.tick, pause=True)
        else:
            self.live.pause()
        self.read_now()

    def compose_body(self) -> ComposeResult:
        yield Static("loading…", id="run-title")
        with Horizontal(id="panes"):
            with TabbedContent(id="info"):
                with TabPane("Metrics", id="tab-metrics"):
                    yield _table("metrics", "key", "last", "step", "count")
                with TabPane("Params", id="tab-params"):
                    yield _table("params", "param", "value")
                with TabPane("Tags", id="tab-tags"):
                    yield _table("tags", "tag", "value")
                with TabPane("Artifacts", id="tab-artifacts"):
                    yield _table("artifacts", "path", "size", "sha256")
                with TabPane("Datasets", id="tab-datasets"):
                    yield _table("datasets", "name", "context", "rows", "digest", "source")
                with TabPane("Code & env", id="tab-env"):
                    yield _table("environment", "what", "value")
            with Vertical(id="curves"):
                yield SelectionList[str](id="metric-keys")
                yield MetricPlot(id="plot", empty="no metrics logged yet")
                yield MetricGrid(id="grid", empty="no metrics logged yet")

    def on_mount(self) -> None:
        self.query_one("#metric-keys", SelectionList).border_title = "metrics to plot (space)"
        self.query_one(MetricGrid).display = False
        self.live = self.set_interval(self.ctx.live_s, self.tick, pause=True)
        if self.away:  # `prebuild`'s
            when_idle(self.app, self._draw_ahead)  # as long again as the build: a pause of its own
        else:
            self.read_now()

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Back to runs", "Close this run", self.action_back)
        yield SystemCommand("Choose curves", "Pick the metric keys to plot", self.action_focus_keys)

    # -- artifact preview -----------------------------------------------------------------

    @on(DataTable.RowSelected, "#artifacts")
    def artifact_selected(self, event: DataTable.RowSelected) -> None:
        if self.detail is not None and 0 <= event.cursor_row < len(self.detail.artifacts):
            a = self.detail.artifacts[event.cursor_row]
            self.read_artifact(a.path, a.size, self.size.width - 10)

    @work(thread=True, group="artifact")
    def read_artifact(self, path: str, size: int, width: int) -> None:
        """Read the artifact's first bytes (all of an image or a Parquet file) and preview them."""
        run_id = self.run_id
        kind = artifact_preview.kind_of(path)
        limit = (
            artifact_preview.MAX_WHOLE if artifact_preview.needs_whole(kind) else artifact_preview.MAX_BYTES
        )
        data = bytearray()
        try:
            for chunk in self.tracking.read_artifact(run_id, path):
                data += chunk
                if len(data) >= limit:
                    break
        except MlboxError as exc:
            self.fail(exc)
            return
        truncated = len(data) < size
        shown = artifact_preview.preview(
            path, bytes(data[:limit]), run_id=run_id, width=max(width, 20), truncated=truncated
        )
        self.post_message(ArtifactRead(run_id, path, size, shown))

    def on_artifact_read(self, message: ArtifactRead) -> None:
        if self.app.screen is self and message.run_id == self.run_id:
            self.app.push_screen(ArtifactPreview(message.path, message.size, message.preview))

    def action_focus_keys(self) -> None:
        self.query_one("#metric-keys", SelectionList).focus()

    def action_delete_run(self) -> None:
        """Delete this run after a confirmation, then go back to the list (`mlbox.tui.deleting`)."""
        run_id, tracking = self.run_id, self.tracking
        days = self.ctx.services.settings.retention_days
        how = "D on Experiments, then R"
        act = lambda: f"deleted run {tracking.delete_run(run_id).id}"  # noqa: E731
        confirm_then(self, "Delete run", f"run {run_id}", restorable(days, how), act)

    def on_deleted(self, message: Deleted) -> None:
        self.notify(message.text, title="Run")
        self.action_back()

    # -- loading ---------------------------------------------------------------------

    def load(self) -> None:
        """Re-read the run in a worker (the live refresh, another choice of curves)."""
        self.reading = True
        self.fetch_detail(list(self.keys), pick_default=not self.keys and not self.user_picked)

    def read_now(self) -> None:
        """The first read of a run, made before the screen paints: about a millisecond for the
        summaries and one curve (a WAL reader never waits for the writer), where a worker's answer
        would come after a paint of the empty screen, and every widget would be drawn twice."""
        self.reading = True
        try:
            loaded = self.read(self.run_id, [], pick_default=True)
        except MlboxError as exc:
            self._show_nothing()  # not the run `show_run` turned from
            self.fail(exc)
            return
        self.on_detail_loaded(loaded)

    def _show_nothing(self) -> None:
        """What a new screen shows before its run is read: no rows, no metric keys, no curves."""
        self.query_one("#run-title", Static).update("loading…")
        for table_id in TABLES:
            self.query_one(f"#{table_id}", DataTable).clear()
        self.shown_rows = {}
        keys_list: SelectionList[str] = self.query_one("#metric-keys", SelectionList)
        with keys_list.prevent(SelectionList.SelectedChanged):
            keys_list.clear_options()
        self.query_one("#plot", MetricPlot).show_series({})

    @work(thread=True, group="detail")
    def fetch_detail(self, keys: list[str], pick_default: bool) -> None:
        try:
            loaded = self.read(self.run_id, keys, pick_default)
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(loaded)

    def read(self, run_id: int, keys: list[str], pick_default: bool) -> DetailLoaded:
        """The run and the curves of ``keys`` (the first metric when none is picked yet)."""
        tracking = self.tracking
        detail = tracking.run_detail(run_id)
        if pick_default and detail.metrics:
            keys = [detail.metrics[0].key]
        series = {}
        for key in keys:
            try:
                series[key] = tracking.metric_series(run_id, key, max_points=self.ctx.max_points)
            except NotFound:  # not logged by this run (yet)
                continue
        return DetailLoaded(run_id, detail, keys, series, defaulted=pick_default)

    def on_service_failed(self, message: ServiceFailed) -> None:
        """Stop re-reading a run the service refuses (e.g. it is gone); the app shows why."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    def tick(self) -> None:
        if not self.reading and not self.away:
            self.load()

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        if message.run_id != self.run_id:
            return  # read for the run this screen showed before `show_run`
        self.reading = False
        detail = message.detail
        if message.defaulted and not self.user_picked:
            self.keys = message.keys
        elif message.keys != self.keys:
            return  # an answer for curves the user has since changed; a newer one is coming
        self.detail = detail
        self._show_title(detail)
        self._show_tables(detail)
        self._show_keys(detail)
        run = detail.run
        self.series = message.series
        self.show_curves()
        if self.live is not None:
            if run.status == "running" and not self.away:
                self.live.resume()
            elif run.status != "running":
                self.live.stop()
                self.live = None

    def show_curves(self) -> None:
        """The chosen curves, overlaid on one chart or one chart each (`charts_each`)."""
        plot, grid = self.query_one("#plot", MetricPlot), self.query_one(MetricGrid)
        plot.display, grid.display = not self.charts_each, self.charts_each
        if self.charts_each:
            charts = {key: {key: chunk} for key, chunk in self.series.items()}
            grid.show_charts(charts, self.curve_options, legend=False)  # each chart's title names it
        elif self.detail is not None:
            run = self.detail.run
            plot.options = self.curve_options  # drawn once, by show_series
            plot.show_series(self.series, title=f"{run.name} (#{run.id})")

    def action_curve_layout(self) -> None:
        """One chart each of the chosen metrics; with fewer than two chosen, of the first few."""
        super().action_curve_layout()
        if self.charts_each and len(self.keys) < 2 and self.detail is not None:
            keys = [m.key for m in self.detail.metrics[:EACH_DEFAULT]]
            if len(keys) > len(self.keys):
                keys_list: SelectionList[str] = self.query_one("#metric-keys", SelectionList)
                with keys_list.prevent(SelectionList.SelectedChanged):
                    for key in keys:
                        keys_list.select(key)
                self.keys, self.user_picked = keys, True
                self.load()

    def _show_title(self, detail: RunDetail) -> None:
        run = detail.run
        self.title = visible(f"Run {run.id} · {run.name}")
        seconds = fmt.run_duration(run.start_time, run.end_time, run.heartbeat)
        title = Text.assemble(
            (visible(run.name), "bold"),
            (f"  #{run.id}", "dim"),
            "  in ",
            (visible(run.experiment), "bold"),
            "  ",
            fmt.status(run.status),
            f"  started {fmt.when(run.start_time)}  ·  {fmt.duration(seconds)}",
        )
        if run.git_sha:
            title.append(
                f"  ·  git {visible(run.git_sha[:10])}{' (dirty)' if run.git_dirty else ''}", style="dim"
            )
        self.query_one("#run-title", Static).update(title)

    def _show_tables(self, detail: RunDetail) -> None:
        run = detail.run
        metric_rows = [
            (m.key, _right(fmt.number(m.last)), _right(str(m.step)), _right(str(m.count)))
            for m in detail.metrics
        ]
        tables: dict[str, list[tuple[str | Text, ...]]] = {
            "metrics": list(metric_rows),
            "params": [(k, fmt.param(v)) for k, v in sorted(run.params.items())],
            "tags": sorted(run.tags.items()),
            "artifacts": [(a.path, _right(fmt.size(a.size)), a.sha256[:12]) for a in detail.artifacts],
            "datasets": [
                (d.name, d.context, _right("-" if d.rows is None else f"{d.rows:,}"), d.digest[:12], d.source)
                for d in detail.datasets
            ],
            "environment": list(code_and_environment(detail)),
        }
        for table_id, rows in tables.items():
            table = self.query_one(f"#{table_id}", DataTable)
            if self.shown_rows.get(table_id) != rows:
                _fill(table, rows)
                self.shown_rows[table_id] = rows

    def _show_keys(self, detail: RunDetail) -> None:
        """The run's metric keys to pick from, `keys` selected; a key the run logs since is added
        at the end, another run's list is replaced (unless it has the same keys)."""
        keys_list: SelectionList[str] = self.query_one("#metric-keys", SelectionList)
        have = {keys_list.get_option_at_index(i).value for i in range(keys_list.option_count)}
        want = [m.key for m in detail.metrics]
        with keys_list.prevent(SelectionList.SelectedChanged):
            if not have <= set(want):
                keys_list.clear_options()
                have = set()
            new = [k for k in want if k not in have]
            if new:
                keys_list.add_options([Selection(fmt.inert(k), k, k in self.keys) for k in new])
            if set(keys_list.selected) != set(self.keys) & set(want):
                keys_list.deselect_all()
                for key in self.keys:
                    if key in want:
                        keys_list.select(key)

    @on(SelectionList.SelectedChanged, "#metric-keys")
    def keys_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        keys = list(event.selection_list.selected)
        if keys != self.keys:
            self.keys = keys
            self.user_picked = True
            self.load()
