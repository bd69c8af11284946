"""The runs table: a page-at-a-time DataTable keyed by run id, with marks.

DataTable measures every cell of every row it is given (about a millisecond
a row), so 10,000 runs would take seconds to show. The table therefore holds
the pages fetched so far — the screen asks for the next page as the cursor
nears the end — and sorting happens in the service, over all runs. A refresh
that returns the same runs in the same order updates changed cells in place,
so the cursor and scroll position survive the periodic re-query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from mlbox.tracking.schemas import Run
from mlbox.tui.views import format as fmt
from mlbox.tui.views.run_columns import Column

MAX_CELL = 28


def _clip(text: Text) -> Text:
    if len(text) > MAX_CELL:
        text.truncate(MAX_CELL - 1)
        text.append("…")
    return text


class RunsTable(DataTable[Text]):
    DEFAULT_CSS = """
    RunsTable {
        height: 1fr;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        # rows matter here, not columns: home/end go to the first and last run
        Binding("home", "scroll_top", "First", show=False),
        Binding("end", "scroll_bottom", "Last", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id=id)
        self.shown_columns: tuple[Column, ...] = ()
        self.sort_key: str | None = None
        self.sort_desc = True
        self.run_order: list[int] = []
        self.run_by_id: dict[int, Run] = {}
        self.marked: list[int] = []

    async def _on_idle(self, event: events.Idle) -> None:
        """DataTable measures new rows when idle; a frame drawn before that has label-wide
        columns, and a new width that leaves the scroll size as it was repaints nothing."""
        measured = self._require_update_dimensions
        await super()._on_idle(event)
        if measured:
            self._clear_caches()  # cells rendered at the old widths
            self.refresh()

    # -- what is shown ---------------------------------------------------------

    def _label(self, column: Column) -> Text:
        label = fmt.inert(column.label, style="bold", justify="right" if column.numeric else "left")
        if column.key == self.sort_key:
            label.append(" ▼" if self.sort_desc else " ▲", style="bold")
        return label

    def _cells(self, run: Run) -> list[Text]:
        marked = run.id in self.marked
        return [_clip(c.cell(run, marked)) for c in self.shown_columns]

    def show(
        self,
        runs: Sequence[Run],
        columns: tuple[Column, ...],
        *,
        sort_key: str | None,
        sort_desc: bool,
        mode: Literal["replace", "append", "refresh"] = "replace",
    ) -> None:
        """Show ``runs``: instead of the rows there, after them (append), or as a
        fresh copy of the first rows (refresh: rows past them stay)."""
        layout_changed = (columns, sort_key, sort_desc) != (self.shown_columns, self.sort_key, self.sort_desc)
        if mode == "append" and not layout_changed:
            self._add(runs)
            return
        keep = self.current_run_id
        if mode == "append":
            runs = [*(self.run_by_id[i] for i in self.run_order), *runs]
        ids = [r.id for r in runs]
        same = ids == (self.run_order[: len(ids)] if mode == "refresh" else self.run_order)
        if same and not layout_changed:
            self._update(runs)
            return
        self.shown_columns, self.sort_key, self.sort_desc = columns, sort_key, sort_desc
        self.clear(columns=layout_changed)
        if layout_changed:
            for column in columns:
                self.add_column(self._label(column), key=column.key)
        self.run_order, self.run_by_id = [], {}
        self._add(runs)
        if keep is not None and keep in self.run_by_id:
            self.move_cursor(row=self.run_order.index(keep), animate=False)

    def _add(self, runs: Sequence[Run]) -> None:
        fresh = [r for r in runs if r.id not in self.run_by_id]
        for r in fresh:
            self.run_by_id[r.id] = r
            self.run_order.append(r.id)
        for r in fresh:
            self.add_row(*self._cells(r), key=str(r.id))

    def _update(self, runs: Sequence[Run]) -> None:
        for run in runs:
            old = self.run_by_id[run.id]
            if old == run:
                continue
            self.run_by_id[run.id] = run
            for column, new, before in zip(
                self.shown_columns, self._cells(run), self._cells(old), strict=True
            ):
                if new != before:
                    self.update_cell(str(run.id), column.key, new)

    # -- cursor and marks ------------------------------------------------------------

    @property
    def current_run_id(self) -> int | None:
        if not self.run_order or not 0 <= self.cursor_row < len(self.run_order):
            return None
        return self.run_order[self.cursor_row]

    def toggle_mark(self) -> int | None:
        """Mark or unmark the run under the cursor; returns its id."""
        run_id = self.current_run_id
        if run_id is None:
            return None
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        self._refresh_mark(run_id)
        return run_id

    def clear_marks(self) -> None:
        marked, self.marked = self.marked, []
        for run_id in marked:
            self._refresh_mark(run_id)

    def _refresh_mark(self, run_id: int) -> None:
        if run_id in self.run_by_id and self.shown_columns and self.shown_columns[0].key == "mark":
            cell = self.shown_columns[0].cell(self.run_by_id[run_id], run_id in self.marked)
            self.update_cell(str(run_id), "mark", cell)
