"""The Experiments screen: the experiments beside their runs, filtered, sorted, marked, opened.

The sidebar lists the experiments with their run counts; choosing one narrows
the table to its runs and its columns to its params and metrics. Filtering
and sorting are the service's (the search language and ``order_by``), so they
cover all runs, not the rows on screen. Which columns show, which are pinned
to the left, the sort and the filter are a view, saved per experiment
(`views.saved_views`) and restored when the experiment is chosen again.

Every store call runs in a thread worker that answers with a message; a
generation number drops answers to a question the user has since changed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from mlbox.store.errors import MlboxError
from mlbox.tracking.keys import RunKeys
from mlbox.tracking.lifecycle import Lifecycle
from mlbox.tracking.schemas import Experiment, RunPage
from mlbox.tui.deleting import Deleted
from mlbox.tui.idle_gc import when_idle
from mlbox.tui.screens import run_deletion
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.screens.run_deletion import DELETE_BINDINGS
from mlbox.tui.views import format as fmt
from mlbox.tui.views import run_columns, saved_views
from mlbox.tui.views.saved_views import ALL, View
from mlbox.tui.widgets.column_chooser import ColumnChoice, ColumnChooser
from mlbox.tui.widgets.experiments_list import ExperimentsList
from mlbox.tui.widgets.runs_table import RunsTable
from mlbox.tui.widgets.sort_picker import SortChoice, SortPicker
from mlbox.tui.widgets.text_prompt import TextPrompt

FetchMode = Literal["replace", "append", "refresh"]
REFRESH_ROWS = 500
KEYS_EVERY = 10
"""Every this many refreshes the scope's param and metric keys are re-read (new columns)."""
PREFETCH_KEYS = 16
"""The keys of up to this many of the sidebar's experiments are read once it is listed, in the
background: choosing one then skips that read (20-35 ms over 10,000 runs)."""
PREBUILD_S = 1.0
"""This long after the first runs are shown, and then once the user is idle (`IdleCollector.defer`),
the run detail screen is built, off screen (`RunDetailScreen.prebuild`): the first enter on a run
then shows a built screen."""
PLACEHOLDER = "filter runs, e.g.  metrics.val_acc > 0.9 and params.lr = '0.01'   (/ to focus, Enter to apply)"


@dataclass(frozen=True)
class Fetch:
    generation: int
    mode: FetchMode
    filter: str
    order_by: list[str] | None
    offset: int
    limit: int
    experiment: str = ALL
    """Only this experiment's runs; ``ALL``: every run."""
    keys: bool = False
    """Also read the scope's param and metric keys (the columns it can show)."""
    focus_from: str | None = None
    """The id of the widget the key was pressed in (the filter, the sidebar): the table takes the
    focus from it when the answer lands, so the focus change and the new rows are drawn in one
    frame (the table repaints all its rows on either), unless the user has moved on meanwhile."""


class RunsFetched(Message):
    def __init__(self, fetch: Fetch, page: RunPage, keys: RunKeys | None) -> None:
        super().__init__()
        self.fetch = fetch
        self.page = page
        self.keys = keys


class ExperimentsListed(Message):
    def __init__(self, experiments: list[Experiment], total: int | None, lifecycle: Lifecycle) -> None:
        super().__init__()
        self.experiments = experiments
        self.lifecycle = lifecycle
        self.total = total
        """The runs under "all experiments" (None: the sum of the experiments' counts)."""


class KeysRead(Message):
    """Experiments' param and metric keys, read ahead of their choice."""

    def __init__(self, keys: dict[str, RunKeys]) -> None:
        super().__init__()
        self.keys = keys


class FilterRejected(Message):
    """The service refused the fetch; a bad filter is shown under the input, anything else in the dialog."""

    def __init__(self, fetch: Fetch, error: MlboxError) -> None:
        super().__init__()
        self.fetch = fetch
        self.error = error


class ExperimentsScreen(MlboxScreen):
    SECTION = "experiments"
    TITLE = "Experiments"
    CSS_PATH = "experiments.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("e", "focus_experiments", "Experiments"),
        Binding("s", "pick_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse"),
        Binding("v", "choose_columns", "Columns"),
        Binding("space", "toggle_mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("u", "clear_marks", "Unmark marks", show=False),
        Binding("n", "rename_experiment", "Rename experiment", show=False),
        Binding("escape", "leave_filter", "Back to the table", show=False),
        *DELETE_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.applied_filter = ""
        self.sort_key: str | None = None
        self.sort_desc = True
        self.total = 0
        self.generation = 0
        self.experiment = ALL
        """The experiment the table shows (``ALL``: every one)."""
        self.shown: list[str] | None = None
        """The user's choice of columns (None: the scope's default)."""
        self.pinned: list[str] = []
        self.keys: dict[str, RunKeys] = {}
        self.prefetched = False
        """Whether the sidebar's experiments' keys were read ahead (once: the refresh keeps them)."""
        """Each scope's param and metric keys, read when it is chosen."""
        self.views: dict[str, View] = {}
        self._views_lock = threading.Lock()
        self.refreshes = 0
        self.prebuilding = False
        """The run detail screen's `prebuild` is under way or done (once)."""
        self.lifecycle: Lifecycle = "active"
        """``deleted``: the table and the sidebar show deleted runs and experiments (``D``)."""

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="experiments-body"):
            yield ExperimentsList(id="experiments")
            with Vertical(id="runs-pane"):
                yield Input(placeholder=PLACEHOLDER, id="filter", select_on_focus=False)
                yield Static("", id="filter-error", markup=False)
                yield Static("loading runs…", id="summary")
                yield RunsTable(id="runs")

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    @property
    def views_path(self) -> Path:
        return saved_views.path_in(self.ctx.services.home.root)

    def on_mount(self) -> None:
        self.table.focus()
        self.views = saved_views.load(self.views_path)
        self._restore_view(ALL)
        self.request("replace", self.applied_filter, keys=True)
        self.list_experiments()
        self.set_interval(self.ctx.refresh_s, self.refresh_runs)
        self.watch(self.table, "scroll_y", self._load_more, init=False)

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Filter runs", "Focus the filter (search expression)", self.action_focus_filter)
        yield SystemCommand("Clear filter", "Show every run", self.action_clear_filter)
        yield SystemCommand(
            "Choose an experiment", "Focus the experiments list", self.action_focus_experiments
        )
        yield SystemCommand("Sort runs by…", "Pick the sort column and direction", self.action_pick_sort)
        yield SystemCommand("Reverse sort", "Flip the sort direction", self.action_reverse_sort)
        yield SystemCommand("Choose columns", "Show, hide and pin columns", self.action_choose_columns)
        yield SystemCommand(
            "Reset view", "This experiment's default columns and sort", self.action_reset_view
        )
        yield SystemCommand(
            "Compare marked runs", "Params, metrics and curves side by side", self.action_compare
        )
        yield SystemCommand("Clear marks", "Unmark every run", self.action_clear_marks)
        yield SystemCommand("Refresh runs", "Re-read the runs now", self.refresh_runs)
        yield SystemCommand(
            "Delete runs", "The marked runs, or the one under the cursor (d)", self.action_delete
        )
        yield SystemCommand(
            "Show deleted runs", "Deleted runs and experiments, to restore (D)", self.action_toggle_deleted
        )

    # -- fetching ------------------------------------------------------------------

    def request(
        self,
        mode: FetchMode,
        filter: str,
        *,
        offset: int = 0,
        limit: int | None = None,
        keys: bool = False,
        focus_from: str | None = None,
    ) -> None:
        if mode == "replace":
            self.generation = self.ask("runs")
        self.reading = True
        order = run_columns.order_by(self._sort_column(), self.sort_desc)
        fetch = Fetch(
            self.generation,
            mode,
            filter,
            order,
            offset,
            limit or self.ctx.page_size,
            experiment=self.experiment,
            keys=keys or self.experiment not in self.keys,
            focus_from=focus_from,
        )
        self.fetch_runs(fetch)

    @work(thread=True, group="runs")
    def fetch_runs(self, fetch: Fetch) -> None:
        experiments = [fetch.experiment] if fetch.experiment != ALL else None
        try:
            page = self.tracking.search_runs(
                fetch.filter,
                order_by=fetch.order_by,
                experiments=experiments,
                limit=fetch.limit,
                offset=fetch.offset,
                lifecycle=self.lifecycle,
            )
            keys = self.tracking.run_keys(experiments[0] if experiments else None) if fetch.keys else None
        except MlboxError as exc:
            self.post_message(FilterRejected(fetch, exc))
            if exc.field != "filter":
                self.fail(exc)
            return
        self.post_message(RunsFetched(fetch, page, keys))

    @work(thread=True, group="experiments")
    def list_experiments(self) -> None:
        lifecycle = self.lifecycle
        try:
            experiments = self.tracking.list_experiments(lifecycle)
            # deleted runs of live experiments are under no deleted experiment: count them all
            total = (
                self.tracking.search_runs(limit=1, lifecycle=lifecycle).total
                if lifecycle != "active"
                else None
            )
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(ExperimentsListed(experiments, total, lifecycle))
        unread = [e.name for e in experiments if e.name not in self.keys][:PREFETCH_KEYS]
        if unread and not self.prefetched:
            self.prefetched = True
            with suppress(MlboxError):  # (an experiment deleted meanwhile) read when it is chosen
                self.post_message(KeysRead({name: self.tracking.run_keys(name) for name in unread}))

    def on_keys_read(self, message: KeysRead) -> None:
        for name, keys in message.keys.items():
            self.keys.setdefault(name, keys)  # a fetch's own read is as new or newer

    def on_experiments_listed(self, message: ExperimentsListed) -> None:
        if message.lifecycle != self.lifecycle:  # asked before D switched the view
            return
        self.query_one(ExperimentsList).show(message.experiments, total=message.total)

    def refresh_runs(self) -> None:
        """The periodic re-query of the first rows, with the current filter and sort.

        At most `REFRESH_ROWS`: unchanged runs are updated in place, and when the
        list changed (a new run) only those rows are rebuilt, so a refresh never
        costs more than a few hundred rows however far the user scrolled.
        """
        if self.reading or self.app.screen is not self:
            return
        loaded = max(len(self.table.run_order), self.ctx.page_size)
        self.refreshes += 1  # the scope's keys (a DISTINCT over all its runs) now and then, not each time
        keys = self.refreshes % KEYS_EVERY == 0
        self.request("refresh", self.applied_filter, limit=min(loaded, REFRESH_ROWS), keys=keys)
        self.list_experiments()

    def _load_more(self) -> None:
        table = self.table
        loaded = len(table.run_order)
        if self.reading or loaded >= self.total or not loaded:
            return
        if table.cursor_row >= loaded - 20 or table.scroll_y + table.size.height >= loaded - 20:
            self.request("append", self.applied_filter, offset=loaded)

    def on_runs_fetched(self, message: RunsFetched) -> None:
        fetch, page = message.fetch, message.page
        if self.stale("runs", fetch.generation) or fetch.experiment != self.experiment:
            return
        self.reading = False
        if message.keys is not None:
            self.keys[fetch.experiment] = message.keys
        table = self.table
        if fetch.mode == "append" and fetch.offset != len(table.run_order):
            return
        if fetch.mode == "replace":
            self._take_focus(fetch)
            self.applied_filter = fetch.filter
            if self.has_class("filter-invalid"):  # a Static's update lays the screen out again
                self.query_one("#filter-error", Static).update("")
                self.remove_class("filter-invalid")
            self._save_view()
        self.total = page.total
        if not self.prebuilding and page.runs:
            self.prebuilding = True
            self.set_timer(PREBUILD_S, lambda: when_idle(self.app, self._prebuild_detail))
        if fetch.mode == "append":
            columns = table.shown_columns
        else:
            columns, fixed = self._columns(page)
            table.fixed_columns = fixed
        table.show(
            page.runs,
            columns,
            sort_key=self.sort_key,
            sort_desc=self.sort_desc,
            mode=fetch.mode,
        )
        self._show_summary()
        self._load_more()  # a page shorter than the screen: fetch the next at once

    def _take_focus(self, fetch: Fetch) -> None:
        focused = self.focused
        if fetch.focus_from is not None and (focused is None or focused.id == fetch.focus_from):
            self.table.focus()

    def on_filter_rejected(self, message: FilterRejected) -> None:
        if self.stale("runs", message.fetch.generation):
            return
        self.reading = False
        if message.error.field != "filter":
            self._take_focus(message.fetch)
        if message.error.field == "filter":
            self.query_one("#filter-error", Static).update(fmt.inert(message.error.message))
            self.add_class("filter-invalid")
            self.query_one("#filter", Input).focus()  # to fix it

    def available_columns(self) -> tuple[run_columns.Column, ...]:
        """Every column the scope can show: its params and metrics (the chooser's list)."""
        keys = self.keys.get(self.experiment, RunKeys(params=[], metrics=[]))
        if self.experiment == ALL:
            return run_columns.all_columns(keys)
        return run_columns.experiment_columns(keys)

    def _columns(self, page: RunPage) -> tuple[tuple[run_columns.Column, ...], int]:
        """The columns to show and how many are pinned at the left.

        One experiment shows all its params and metrics; all experiments
        together show the metric keys and params most of the first page's
        runs have (the union would push the interesting ones off-screen).
        Either way the user's choice of columns (the view) wins.
        """
        available = self.available_columns()
        if self.experiment == ALL:  # the columns follow the first page: the runs the user sees first
            default = run_columns.choose_columns(page.runs[: self.ctx.page_size], keep=self.sort_key)
        else:
            default = available
        return run_columns.arrange(available, default, self.shown, self.pinned, keep=self.sort_key)

    def _show_summary(self) -> None:
        table = self.table
        parts = [] if self.experiment == ALL else [f"experiment {self.experiment}"]
        parts.append(f"{len(table.run_order):,} of {self.total:,} runs")
        if self.applied_filter:
            parts.append(f"filter: {self.applied_filter}")
        column = self._sort_column()
        if column is not None:
            parts.append(f"sorted by {column.label} {'▼' if self.sort_desc else '▲'}")
        else:
            parts.append("newest first")
        if table.marked:
            parts.append(f"{len(table.marked)} marked (c to compare)")
        summary = fmt.inert("  ·  ".join(parts))  # a filter is user text
        self.query_one("#summary", Static).update(summary, layout=False)  # one line (CSS): no new layout

    # -- sorting -------------------------------------------------------------------

    def _sort_column(self) -> run_columns.Column | None:
        for column in self.table.shown_columns:
            if column.key == self.sort_key:
                return column
        if self.sort_key is None:
            return None
        for column in run_columns.FIXED:  # a saved view sorted by id, restored before the first page
            if column.key == self.sort_key:
                return column
        kind, _, name = self.sort_key.partition(":")
        return run_columns.metric_column(name) if kind == "metric" else run_columns.param_column(name)

    def sort_on(self, key: str | None, descending: bool) -> None:
        self.sort_key, self.sort_desc = key, descending
        self.request("replace", self.applied_filter)

    @on(DataTable.HeaderSelected)
    def header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        column = next((c for c in self.table.shown_columns if c.key == key), None)
        if column is None or column.sort is None:
            return
        if key == self.sort_key:
            self.sort_on(key, not self.sort_desc)
        else:
            self.sort_on(key, column.descending_first)

    def action_pick_sort(self) -> None:
        columns = [*self.table.shown_columns, *self.available_columns()]
        SortPicker.shown(self.app, columns, self.sort_key, self.sort_desc, self._sort_picked)

    def _sort_picked(self, choice: SortChoice | None) -> None:
        if choice is not None:
            self.sort_on(*choice)

    def action_reverse_sort(self) -> None:
        if self.sort_key is None:
            self.sort_on("id", False)
        else:
            self.sort_on(self.sort_key, not self.sort_desc)

    # -- columns and views ------------------------------------------------------------

    def action_choose_columns(self) -> None:
        table = self.table
        shown = [c.key for c in table.shown_columns]
        available = list(table.shown_columns)
        available += [c for c in self.available_columns() if c.key not in set(shown)]
        ColumnChooser.shown(self.app, available, shown, self.pinned, self._columns_chosen)

    def _columns_chosen(self, choice: ColumnChoice | None) -> None:
        if choice is None:
            return
        self.shown, self.pinned = choice.shown, choice.pinned
        self.request("replace", self.applied_filter)

    def action_reset_view(self) -> None:
        self.shown, self.pinned, self.sort_key, self.sort_desc = None, [], None, True
        self.request("replace", self.applied_filter)

    def _restore_view(self, scope: str) -> None:
        view = self.views.get(scope, View())
        self.shown, self.pinned = view.columns, list(view.pinned)
        self.sort_key, self.sort_desc = view.sort_key, view.sort_desc
        self.applied_filter = view.filter
        self.query_one("#filter", Input).value = view.filter

    def _save_view(self) -> None:
        """Remember this scope's view, written only when it changed (switching scopes writes nothing)."""
        view = View(
            columns=self.shown,
            pinned=self.pinned,
            sort_key=self.sort_key,
            sort_desc=self.sort_desc,
            filter=self.applied_filter,
        )
        if self.views.get(self.experiment, View()) == view:
            return
        self.views[self.experiment] = view
        self._write_view(self.experiment)

    @work(thread=True, group="views")
    def _write_view(self, scope: str) -> None:
        """Write ``scope``'s view off the UI thread (an fsync: 8-16 ms of each filter or sort
        here). Writes take turns, and each writes the view as it is by then, so however the
        threads are scheduled the file ends with the newest."""
        with self._views_lock:
            try:
                saved_views.save(self.views_path, scope, self.views[scope])
            except OSError as exc:
                self.app.call_from_thread(
                    self.notify, f"the view was not saved: {exc}", title="Views", severity="warning"
                )

    # -- experiments -------------------------------------------------------------------

    def action_focus_experiments(self) -> None:
        self.query_one(ExperimentsList).focus()

    @on(ExperimentsList.Chosen)
    def experiment_chosen(self, event: ExperimentsList.Chosen) -> None:
        self.choose_experiment(event.experiment)

    def choose_experiment(self, experiment: str) -> None:
        """Show ``experiment``'s runs (``ALL``: every run) with its saved view."""
        self.experiment = experiment
        self.table.clear_marks()
        self._restore_view(experiment)
        self.request("replace", self.applied_filter, focus_from="experiments")  # its keys: read once
        if self.focused is None or self.focused.id != "experiments":
            self.table.focus()

    # -- filter --------------------------------------------------------------------

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.table.focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.request("replace", "")

    @on(Input.Submitted, "#filter")
    def filter_submitted(self, event: Input.Submitted) -> None:
        self.request("replace", event.value.strip(), focus_from="filter")

    # -- rows ------------------------------------------------------------------------

    @on(DataTable.RowHighlighted)
    def row_highlighted(self) -> None:
        self._load_more()

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            from mlbox.tui.screens.run_detail import RunDetailScreen  # plotext: not for the TUI's start

            RunDetailScreen.open(self.app, int(event.row_key.value))  # the screen of the last run, turned

    def _prebuild_detail(self) -> None:
        """(At an idle tick, which may come while the app closes and this screen's widgets go.)"""
        try:
            run_id = self.table.current_run_id
        except NoMatches:
            return
        if run_id is not None:
            from mlbox.tui.screens.run_detail import RunDetailScreen  # plotext: not for the TUI's start

            RunDetailScreen.prebuild(self.app, run_id)

    def action_toggle_mark(self) -> None:
        self.table.toggle_mark()
        self._show_summary()

    def action_clear_marks(self) -> None:
        self.table.clear_marks()
        self._show_summary()

    def action_compare(self) -> None:
        marked = list(self.table.marked)
        if len(marked) < 2:
            self.notify(
                "Mark two or more runs with space, then press c.", title="Compare", severity="warning"
            )
            return
        from mlbox.tui.screens.compare import CompareScreen  # plotext: not for the TUI's start

        self.app.push_screen(CompareScreen(marked))

    # -- renaming --------------------------------------------------------------------

    def action_rename_experiment(self) -> None:
        """Rename the experiment highlighted in the sidebar, else the one the table shows."""
        sidebar = self.query_one(ExperimentsList)
        name = self.experiment
        if self.focused is sidebar and sidebar.highlighted:
            name = sidebar.names[sidebar.highlighted - 1]
        if name == ALL or self.lifecycle == "deleted":
            self.notify(
                "Choose one live experiment (e, then enter) to rename it.", title="Rename", severity="warning"
            )
            return

        def answered(new: str | None) -> None:
            if new is not None and new != name:
                self.rename_experiment(name, new)

        hint = "its runs follow; a model version keeps the name it was registered under\nEnter to rename, Esc to cancel"
        self.app.push_screen(TextPrompt(f"Rename experiment {name}", name, hint), answered)

    @work(thread=True, group="rename")
    def rename_experiment(self, old: str, new: str) -> None:
        try:
            renamed = self.tracking.rename_experiment(old, new).name
        except MlboxError as exc:
            self.fail(exc)
            return
        self.app.call_from_thread(self.renamed, old, renamed)

    def renamed(self, old: str, new: str) -> None:
        self.notify(f"{old} → {new}", title="Experiment renamed")
        if self.experiment == old:
            self.choose_experiment(new)
        self.list_experiments()

    # -- deleting and restoring (`mlbox.tui.screens.run_deletion`) ---------------------

    def action_delete(self) -> None:
        run_deletion.delete(self)

    def action_restore(self) -> None:
        run_deletion.restore(self)

    def action_toggle_deleted(self) -> None:
        run_deletion.toggle_deleted(self)

    def on_deleted(self, message: Deleted) -> None:
        run_deletion.deleted(self, message)
