"""The runs table: a page-at-a-time DataTable keyed by run id, with marks.

DataTable measures every cell of every row it is given (about a millisecond
a row), so 10,000 runs would take seconds to show. The table therefore holds
the pages fetched so far — the screen asks for the next page as the cursor
nears the end — and sorting happens in the service, over all runs. A refresh
that returns the same runs in the same order updates changed cells in place,
so the cursor and scroll position survive the periodic re-query.

DataTable keeps the cursor, scrolling, headers and messages; the body lines
are drawn here (`render_line`, `_render_line_in_row`). DataTable's own path
renders a row cell by cell through a console and caches each line under the
whole cursor coordinate, so every filter or sort repainted a screenful at
about 3 ms a row. Here a row's styles are worked out once, each plain cell is
one segment (the same segments and styles DataTable draws, click meta
included), cells of scrollable columns outside the horizontal viewport are
blanks of their width (`visible_span`), and a line is cached per row, so a
cursor move redraws two lines. Rows are added in bulk (`_put_row`), without
DataTable's per-row column ordering and cursor validation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import ClassVar, Literal

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._segment_tools import line_crop
from textual._types import SegmentLines
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.coordinate import Coordinate
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, DuplicateKey, Row, RowKey

from mlbox.tracking.schemas import Run
from mlbox.tui.views import format as fmt
from mlbox.tui.views.run_columns import Column
from mlbox.tui.widgets.quick_table import QuickTable

MAX_CELL = 28


Cell = Text | str
"""A styled cell as Text; a plain one as its string, which the garbage collector does not track
(a page of 100 runs x 30 columns of Text kept tens of thousands of objects alive per key press,
and the collections of the oldest generation they set off cost 50-250 ms)."""


def _cell(cell: Text | str) -> Cell:
    """``cell`` clipped to `MAX_CELL`; a Text as its plain string when it has no style of its own
    (its justification is its column's: numbers right, the rest left, as `Column.cell` makes them)."""
    if isinstance(cell, str):
        return cell if len(cell) <= MAX_CELL else cell[: MAX_CELL - 1] + "…"
    if len(cell) > MAX_CELL:
        cell.truncate(MAX_CELL - 1)
        cell.append("…")
    return cell if cell.spans or cell.style else cell.plain


def _width(cell: Cell) -> int:
    return cell_len(cell) if isinstance(cell, str) else cell.cell_len


_COMPONENTS = sorted(DataTable.COMPONENT_CLASSES)
"""The component classes a body row is drawn with (cursor, hover, fixed, odd and even rows…)."""

_FIXED = Style.from_meta({"fixed": True})
"""DataTable's meta on a fixed cell."""


@dataclass(frozen=True)
class _Geometry:
    key: tuple[int, int, int, int]
    """Scroll x, width, fixed columns, column count: what it was measured for."""
    columns: tuple[ColumnKey, ...]
    widths: tuple[int, ...]
    first: int
    """The first and last scrollable column that shows."""
    last: int
    filler: int
    """Blank cells after the last column, to the table's right edge."""


class RunsTable(QuickTable[Cell]):
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
        # before DataTable's __init__, which clears the caches
        self._geometry: _Geometry | None = None
        self._right: set[ColumnKey] = set()
        """The columns whose string cells are right-justified (the numeric ones)."""
        self._component_rich_styles: dict[tuple[str, object], Style] = {}
        self._body_cache: LRUCache[tuple[object, ...], tuple[SegmentLines, SegmentLines]] = LRUCache(300)
        """Body rows as drawn, cleared with DataTable's own row cache."""
        self._body_lines: LRUCache[tuple[object, ...], Strip] = LRUCache(300)
        """Body lines as shown (cropped to the viewport), cleared with the rows."""
        self._frame_style: Style | None = None
        """The widget's style while `render_lines` draws a frame (asked once, not per line)."""
        self._looks: dict[object, tuple[Style, ...]] = {}
        """The look (`_look`) the cached rows were drawn with, per pseudo-class state."""
        self._restyled = True
        """Styles were applied since the last frame: check the look before drawing from the caches."""
        super().__init__(cursor_type="row", zebra_stripes=True, id=id)
        self._visible: tuple[int, int] = (0, 1 << 30)
        """Scrollable column indexes [first, last] inside the viewport, as of the row being rendered."""
        self.shown_columns: tuple[Column, ...] = ()
        self.sort_key: str | None = None
        self.sort_desc = True
        self.run_order: list[int] = []
        self.run_by_id: dict[int, Run] = {}
        self.marked: list[int] = []

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """`show` sets every column's width from its cells' lengths (cheap, and before the
        first frame), so DataTable's measuring of each new cell (a console render, about
        0.1 ms a cell: 200 ms for a page of 30 columns) and the repaint after it are skipped."""
        if any(column.auto_width for column in self.columns.values()):
            super()._update_dimensions(new_rows)
            return
        width = sum(column.get_render_width(self) for column in self.columns.values())
        header = self.header_height if self.show_header else 0
        self.virtual_size = Size(width + self._row_label_column_width, self._total_row_height + header)

    def watch_scroll_x(self, old_value: float, new_value: float) -> None:
        if round(old_value) != round(new_value):
            self._row_render_cache.clear()  # its rows hold blanks where columns were off-screen
            self._body_cache.clear()
            self._body_lines.clear()
        self._body_lines.clear()
        super().watch_scroll_x(old_value, new_value)

    def on_resize(self) -> None:
        self._row_render_cache.clear()  # a wider table shows more columns
        self._body_cache.clear()
        self._body_lines.clear()

    def visible_span(self) -> tuple[int, int]:
        """The first and last scrollable column that shows: DataTable crops a row's cells, all
        of them laid side by side, to [scroll_x + width of the fixed columns, scroll_x + width)."""
        columns = self.ordered_columns
        widths = [column.get_render_width(self) for column in columns]
        left = int(self.scroll_x) + sum(widths[: self.fixed_columns])
        right = int(self.scroll_x) + self.size.width
        first, last, x = len(columns), -1, 0
        for index, width in enumerate(widths):
            if index >= self.fixed_columns and x < right and x + width > left:
                first, last = min(first, index), index
            x += width
        return first, last

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._body_cache.clear()
        self._body_lines.clear()
        self._component_rich_styles.clear()
        self._geometry = None

    def notify_style_update(self) -> None:
        """Any restyle (a focus change: leaving the screen and coming back) made DataTable drop
        every drawn row, 13-20 ms to draw the page again. Rows are cached under the pseudo-class
        state and the widget's style, so they are kept here, and `_check_look` drops them at the
        next frame only if the look they were drawn with moved (the CSS changed: a theme).
        (Called before the component classes are restyled, so the look cannot be read yet.)"""
        super().notify_style_update()
        self._restyled = True

    def _look(self) -> tuple[Style, ...]:
        return (self.rich_style, *(self.get_component_styles(n).rich_style for n in _COMPONENTS))

    def _check_look(self) -> None:
        state, look = self.get_pseudo_class_state(), self._look()
        if self._looks.get(state, look) != look:
            self._looks.clear()
            self._body_cache.clear()
            self._body_lines.clear()
            self._component_rich_styles.clear()
        self._looks[state] = look

    def _measure(self) -> _Geometry:
        """Where each column sits on a body line (kept until the widths, the scroll or the size change)."""
        key = (int(self.scroll_x), self.size.width, self.fixed_columns, len(self.columns))
        if self._geometry is not None and self._geometry.key == key:
            return self._geometry
        self._visible = self.visible_span()
        widths = tuple(column.get_render_width(self) for column in self.ordered_columns)
        table_width = sum(widths[self.fixed_columns :]) + self._row_label_column_width
        self._geometry = _Geometry(
            key=key,
            columns=tuple(column.key for column in self.ordered_columns),
            widths=widths,
            first=self._visible[0],
            last=self._visible[1],
            filler=max(0, self.size.width - table_width),
        )
        return self._geometry

    def render_lines(self, crop: Region) -> list[Strip]:
        if self._restyled:
            self._restyled = False
            self._check_look()
        self._frame_style = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._frame_style = None

    def render_line(self, y: int) -> Strip:
        """A body line from its row's segments, cropped and cached per row: DataTable finds the
        row through its line offsets, caches each line under the whole cursor and hover
        coordinates (so a cursor move redraws every line) and asks for the widget's style
        (an ancestor walk) per line. Headers, labels and tall rows go DataTable's way."""
        header = self.header_height if self.show_header else 0
        if y < header or self.fixed_rows or self._labelled_row_exists:
            return super().render_line(y)
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        row_index = y - header + scroll_y
        base_style = self._frame_style or self.rich_style
        if not 0 <= row_index < self.row_count:
            return Strip.blank(width, base_style)
        if len(self._y_offsets) != self.row_count:  # a row taller than a line
            return super().render_line(y)
        row_key = self._row_locations.get_key(row_index)
        if row_key is None:
            return Strip.blank(width, base_style)
        cursor = self.cursor_coordinate.row == row_index
        hover = self.hover_coordinate.row == row_index
        key = (
            row_key,
            cursor,
            hover,
            base_style,
            self.show_cursor,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
        )
        strip = self._body_lines.get(key)
        if strip is None:
            fixed, scrollable = self._render_line_in_row(
                row_key, 0, base_style, self.cursor_coordinate, self.hover_coordinate
            )
            geometry = self._measure()
            fixed_width = sum(geometry.widths[: self.fixed_columns])
            segments = [*chain.from_iterable(fixed)]
            segments += line_crop(
                [*chain.from_iterable(scrollable)], scroll_x + fixed_width, scroll_x + width, width
            )
            strip = Strip(segments).adjust_cell_length(width, base_style).simplify()
            self._body_lines[key] = strip
        return strip

    def _render_line_in_row(
        self,
        row_key: RowKey,
        line_no: int,
        base_style: Style,
        cursor_location: Coordinate,
        hover_location: Coordinate,
    ) -> tuple[SegmentLines, SegmentLines]:
        """A body row drawn in one pass over its cells, each one a segment or three.

        DataTable renders a row cell by cell through its generic path (a cache
        lookup, coordinate and style objects, a console render per cell): with
        30 columns, about 3 ms a row and 150 ms for a screenful after every
        filter or sort. Here the styles are worked out once per row and only the
        cells that show are drawn; the segments and their styles (meta included,
        so clicks and hovers work as before) are those DataTable draws.
        The header, and anything unusual (labels, tall rows), goes the usual way.
        """
        row_index = self._row_locations.get(row_key) if row_key in self._row_locations else None
        row = self.rows.get(row_key)
        if (
            row_index is None
            or row is None
            or row.height != 1
            or line_no
            or self._labelled_row_exists
            or self.cursor_type != "row"
        ):
            self._visible = self.visible_span()
            return super()._render_line_in_row(row_key, line_no, base_style, cursor_location, hover_location)
        cursor = cursor_location.row == row_index
        hover = hover_location.row == row_index
        cache_key = (
            row_key,
            line_no,
            base_style,
            cursor,
            hover,
            self.show_cursor,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
        )
        cached = self._body_cache.get(cache_key)
        if cached is not None:
            return cached
        geometry = self._measure()
        cells = self._data[row_key]
        row_style = (
            self._component_style("datatable--odd-row" if row_index % 2 else "datatable--even-row")
            if self.zebra_stripes
            else base_style
        )
        show_cursor, show_hover = self.show_cursor, self._show_hover_cursor
        css_fg, css_bg = self.cursor_foreground_priority == "css", self.cursor_background_priority == "css"
        fixed_component, fixed_post = self._get_styles_to_render_cell(
            False, False, True, hover, cursor, show_cursor, show_hover, css_fg, css_bg
        )
        component, post = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, show_cursor, show_hover, css_fg, css_bg
        )
        fixed_pre = self._component_style("datatable--fixed") + _FIXED + fixed_component
        pre = row_style + component
        fixed: list[Segment] = []
        scrollable: list[Segment] = []
        fixed_columns, padding, right = self.fixed_columns, self.cell_padding, self._right
        fixed_look = (fixed_pre, fixed_post, fixed_pre + fixed_post)
        look = (pre, post, pre + post)
        for index, (column_key, width) in enumerate(zip(geometry.columns, geometry.widths, strict=True)):
            cell = cells.get(column_key, "")
            if not isinstance(cell, (str, Text)):
                cell = str(cell)
            meta = Style.from_meta({"row": row_index, "column": index})
            if index < fixed_columns:
                fixed += self._cell_segments(cell, column_key in right, width, padding, fixed_look, meta)
                scrollable.append(Segment(" " * width, row_style))  # cropped away: it shows as fixed
            elif geometry.first <= index <= geometry.last:
                scrollable += self._cell_segments(cell, column_key in right, width, padding, look, meta)
            else:
                scrollable.append(Segment(" " * width, row_style))  # off-screen: cropped away
        extend, _ = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, show_cursor, show_hover, False, False
        )
        extend_meta = Style.from_meta({"row": row_index, "column": 0, "out_of_bounds": True})
        scrollable.append(Segment(" " * geometry.filler, row_style + extend + extend_meta))
        lines: tuple[SegmentLines, SegmentLines] = ([fixed], [scrollable])
        self._body_cache[cache_key] = lines
        return lines

    def _component_style(self, name: str) -> Style:
        """A component class's rich style, worked out once per pseudo-class state (focus, hover):
        DataTable asks for it per row, and each answer walks the widget's ancestors."""
        key = (name, self._pseudo_class_state)
        style = self._component_rich_styles.get(key)
        if style is None:
            style = self._component_rich_styles[key] = self.get_component_styles(name).rich_style
        return style

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> SegmentLines:
        """The header's cells (body rows are drawn by `_render_line_in_row`); a cell of a
        scrollable column off-screen is a blank of its width (cropped away)."""
        if column_index >= self.fixed_columns and not self._visible[0] <= column_index <= self._visible[1]:
            return [[Segment(" " * width, base_style)]]
        return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)

    # -- what is shown ---------------------------------------------------------

    def _label(self, column: Column) -> Text:
        label = fmt.inert(column.label, style="bold", justify="right" if column.numeric else "left")
        if column.key == self.sort_key:
            label.append(" ▼" if self.sort_desc else " ▲", style="bold")
        return label

    def _cells(self, run: Run) -> list[Cell]:
        marked = run.id in self.marked
        return [_cell(c.cell(run, marked)) for c in self.shown_columns]

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
        columns_changed = columns != self.shown_columns
        self.shown_columns, self.sort_key, self.sort_desc = columns, sort_key, sort_desc
        self._right = {ColumnKey(c.key) for c in columns if c.numeric}
        self.clear(columns=columns_changed)
        for column in columns:  # the same columns, another sort: only the arrows in the labels move
            label = self._label(column)
            if columns_changed:
                self.add_column(label, key=column.key, width=label.cell_len)
            else:
                self.columns[ColumnKey(column.key)].label = label
        self.run_order, self.run_by_id = [], {}
        self._add(runs, reset_widths=True)
        if keep is not None and keep in self.run_by_id:
            self.move_cursor(row=self.run_order.index(keep), animate=False)

    def _add(self, runs: Sequence[Run], *, reset_widths: bool = False) -> None:
        """Add the rows of ``runs`` not shown yet, widening each column to its longest cell
        (``reset_widths``: fitting the columns to these rows and their labels alone)."""
        fresh = [r for r in runs if r.id not in self.run_by_id]
        rows = [self._cells(r) for r in fresh]
        changed = False
        for index, column in enumerate(self.shown_columns):
            table_column = self.columns.get(ColumnKey(column.key))
            if table_column is None:
                continue
            widest = self._label(column).cell_len if reset_widths else table_column.width
            widest = max([widest, *(_width(row[index]) for row in rows)])
            if widest != table_column.width or table_column.auto_width:
                table_column.width, table_column.auto_width, changed = widest, False, True
        keys = [c.key for c in self.ordered_columns]
        was_empty = self.row_count == 0
        for r, cells in zip(fresh, rows, strict=True):
            self.run_by_id[r.id] = r
            self.run_order.append(r.id)
            self._put_row(RowKey(str(r.id)), dict(zip(keys, cells, strict=True)))
        if fresh:
            self._rows_added(was_empty)
        if changed:
            self._clear_caches()
            self.refresh()

    def _put_row(self, key: RowKey, cells: dict[ColumnKey, Cell]) -> None:
        """DataTable's `add_row` for a one-line row, less what `_rows_added` does once for all:
        add_row re-orders the columns twice and re-validates the cursor for every row it adds
        (30 ms of each page of 100 rows)."""
        if key in self._row_locations:
            raise DuplicateKey(f"The row key {key!r} already exists.")
        self._row_locations[key] = self.row_count
        self._data[key] = cells
        self.rows[key] = Row(key, 1)
        self._new_rows.add(key)

    def _rows_added(self, was_empty: bool) -> None:
        """What `add_row` does after adding a row, done once after adding many."""
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        if was_empty and self.columns and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()  # the first rows: a highlighted cell where there was none
        self._update_count += 1
        self.check_idle()

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
