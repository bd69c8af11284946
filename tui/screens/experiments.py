"""The Experiments screen: every run in one table, filtered, sorted, marked, opened.

Filtering and sorting are the service's (the search language and
``order_by``), so they cover all runs, not the rows on screen. Every store
call runs in a thread worker that answers with a message; a generation
number drops answers to a question the user has since changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Literal

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from mlbox.store.errors import MlboxError
from mlbox.tracking.schemas import RunPage
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.screens.compare import CompareScreen
from mlbox.tui.screens.run_detail import RunDetailScreen
from mlbox.tui.views import format as fmt
from mlbox.tui.views import run_columns
from mlbox.tui.widgets.runs_table import RunsTable

FetchMode = Literal["replace", "append", "refresh"]
REFRESH_ROWS = 500
PLACEHOLDER = "filter runs, e.g.  metrics.val_acc > 0.9 and params.lr = '0.01'   (/ to focus, Enter to apply)"


@dataclass(frozen=True)
class Fetch:
    generation: int
    mode: FetchMode
    filter: str
    order_by: list[str] | None
    offset: int
    limit: int


class RunsFetched(Message):
    def __init__(self, fetch: Fetch, page: RunPage) -> None:
        super().__init__()
        self.fetch = fetch
        self.page = page


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
        Binding("s", "cycle_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse"),
        Binding("space", "toggle_mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("u", "clear_marks", "Unmark", show=False),
        Binding("escape", "leave_filter", "Table", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.applied_filter = ""
        self.sort_key: str | None = None
        self.sort_desc = True
        self.total = 0
        self.generation = 0

    def compose_body(self) -> ComposeResult:
        yield Input(placeholder=PLACEHOLDER, id="filter", select_on_focus=False)
        yield Static("", id="filter-error", markup=False)
        yield Static("loading runs…", id="summary")
        yield RunsTable(id="runs")

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    def on_mount(self) -> None:
        self.table.focus()
        self.request("replace", self.applied_filter)
        self.set_interval(self.ctx.refresh_s, self.refresh_runs)
        self.watch(self.table, "scroll_y", self._load_more, init=False)

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Filter runs", "Focus the filter (search expression)", self.action_focus_filter)
        yield SystemCommand("Clear filter", "Show every run", self.action_clear_filter)
        yield SystemCommand("Sort runs by next column", "Cycle the sort column", self.action_cycle_sort)
        yield SystemCommand("Reverse sort", "Flip the sort direction", self.action_reverse_sort)
        yield SystemCommand(
            "Compare marked runs", "Params, metrics and curves side by side", self.action_compare
        )
        yield SystemCommand("Clear marks", "Unmark every run", self.action_clear_marks)
        yield SystemCommand("Refresh runs", "Re-read the runs now", self.refresh_runs)

    # -- fetching ------------------------------------------------------------------

    def request(self, mode: FetchMode, filter: str, *, offset: int = 0, limit: int | None = None) -> None:
        if mode == "replace":
            self.generation = self.ask("runs")
        self.reading = True
        order = run_columns.order_by(self._sort_column(), self.sort_desc)
        fetch = Fetch(self.generation, mode, filter, order, offset, limit or self.ctx.page_size)
        self.fetch_runs(fetch)

    @work(thread=True, group="runs")
    def fetch_runs(self, fetch: Fetch) -> None:
        try:
            page = self.tracking.search_runs(
                fetch.filter, order_by=fetch.order_by, limit=fetch.limit, offset=fetch.offset
            )
        except MlboxError as exc:
            self.post_message(FilterRejected(fetch, exc))
            if exc.field != "filter":
                self.fail(exc)
            return
        self.post_message(RunsFetched(fetch, page))

    def refresh_runs(self) -> None:
        """The periodic re-query of the first rows, with the current filter and sort.

        At most `REFRESH_ROWS`: unchanged runs are updated in place, and when the
        list changed (a new run) only those rows are rebuilt, so a refresh never
        costs more than a few hundred rows however far the user scrolled.
        """
        if self.reading or self.app.screen is not self:
            return
        loaded = max(len(self.table.run_order), self.ctx.page_size)
        self.request("refresh", self.applied_filter, limit=min(loaded, REFRESH_ROWS))

    def _load_more(self) -> None:
        table = self.table
        loaded = len(table.run_order)
        if self.reading or loaded >= self.total or not loaded:
            return
        if table.cursor_row >= loaded - 20 or table.scroll_y + table.size.height >= loaded - 20:
            self.request("append", self.applied_filter, offset=loaded)

    def on_runs_fetched(self, message: RunsFetched) -> None:
        fetch, page = message.fetch, message.page
        if self.stale("runs", fetch.generation):
            return
        self.reading = False
        table = self.table
        if fetch.mode == "append" and fetch.offset != len(table.run_order):
            return
        if fetch.mode == "replace":
            self.applied_filter = fetch.filter
            self.query_one("#filter-error", Static).update("")
            self.remove_class("filter-invalid")
        self.total = page.total
        if fetch.mode == "append":
            columns = table.shown_columns
        else:  # the columns follow the first page: the runs the user sees first
            columns = run_columns.choose_columns(page.runs[: self.ctx.page_size], keep=self.sort_key)
        table.show(
            page.runs,
            columns,
            sort_key=self.sort_key,
            sort_desc=self.sort_desc,
            mode=fetch.mode,
        )
        self._show_summary()
        self._load_more()  # a page shorter than the screen: fetch the next at once

    def on_filter_rejected(self, message: FilterRejected) -> None:
        if self.stale("runs", message.fetch.generation):
            return
        self.reading = False
        if message.error.field == "filter":
            self.query_one("#filter-error", Static).update(fmt.inert(message.error.message))
            self.add_class("filter-invalid")
            self.query_one("#filter", Input).focus()  # to fix it

    def _show_summary(self) -> None:
        table = self.table
        parts = [f"{len(table.run_order):,} of {self.total:,} runs"]
        if self.applied_filter:
            parts.append(f"filter: {self.applied_filter}")
        column = self._sort_column()
        if column is not None:
            parts.append(f"sorted by {column.label} {'▼' if self.sort_desc else '▲'}")
        else:
            parts.append("newest first")
        if table.marked:
            parts.append(f"{len(table.marked)} marked (c to compare)")
        self.query_one("#summary", Static).update(fmt.inert("  ·  ".join(parts)))  # a filter is user text

    # -- sorting -------------------------------------------------------------------

    def _sort_column(self) -> run_columns.Column | None:
        for column in self.table.shown_columns:
            if column.key == self.sort_key:
                return column
        if self.sort_key is None:
            return None
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

    def action_cycle_sort(self) -> None:
        sortable = [c for c in self.table.shown_columns if c.sort is not None]
        if not sortable:
            return
        keys = [c.key for c in sortable]
        nxt = sortable[(keys.index(self.sort_key) + 1) % len(keys)] if self.sort_key in keys else sortable[0]
        self.sort_on(nxt.key, nxt.descending_first)

    def action_reverse_sort(self) -> None:
        if self.sort_key is None:
            self.sort_on("id", False)
        else:
            self.sort_on(self.sort_key, not self.sort_desc)

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
        self.request("replace", event.value.strip())
        self.table.focus()

    # -- rows ------------------------------------------------------------------------

    @on(DataTable.RowHighlighted)
    def row_highlighted(self) -> None:
        self._load_more()

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(RunDetailScreen(int(event.row_key.value)))

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
        self.app.push_screen(CompareScreen(marked))
