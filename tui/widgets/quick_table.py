"""A DataTable whose one-line text cells are drawn as segments directly, not through a console.

DataTable renders every cell through ``console.render_lines`` (a ``Styled`` of a ``Padding`` of
the cell): about a millisecond a row of five cells here, so the run detail's metrics table (20
rows) took 15-28 ms of each run opened, as long as the plot. A one-line cell of text is its
padding, its text justified or truncated to the width, and the styles DataTable would apply:
`QuickTable._cell_segments` builds those segments (the runs table's rows are drawn with it too). Cells of
other renderables, taller rows, headers and labels go DataTable's way.
"""

from __future__ import annotations

from typing import Any, TypeVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._types import SegmentLines
from textual.widgets import DataTable

CellType = TypeVar("CellType")


class QuickTable(DataTable[CellType]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._text_styles: dict[str | Style, Style] = {}  # before DataTable's __init__ clears caches
        super().__init__(*args, **kwargs)

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> SegmentLines:
        """A body cell of text on a one-line row as `_cell_segments`, cached as DataTable caches it."""
        row_key = self._row_locations.get_key(row_index) if row_index >= 0 and column_index >= 0 else None
        column_key = self._column_locations.get_key(column_index)
        row = self.rows.get(row_key) if row_key is not None else None
        if row is None or row.height != 1 or row_key is None or column_key is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        key = (
            row_key,
            column_key,
            base_style,
            cursor,
            hover,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
        )
        lines = self._cell_render_cache.get(key)
        if lines is not None:
            return lines
        cell = self._get_row_renderables(row_index).cells[column_index]
        if not isinstance(cell, (Text, str)):
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        fixed = row_index < self.fixed_rows or column_index < self.fixed_columns
        component, post = self._get_styles_to_render_cell(
            False,
            False,
            fixed,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        pre = base_style + component
        meta = Style.from_meta({"row": row_index, "column": column_index})
        lines = [self._cell_segments(cell, False, width, self.cell_padding, (pre, post, pre + post), meta)]
        self._cell_render_cache[key] = lines
        return lines

    def _cell_segments(
        self,
        cell: Text | str,
        right: bool,
        width: int,
        padding: int,
        look: tuple[Style, Style, Style],
        meta: Style,
    ) -> list[Segment]:
        """``cell`` padded and justified to ``width`` (a string: to the right when ``right``):
        DataTable's segments for it, styled as ``Segment.apply_style(segments, pre + meta,
        post)`` styles them (``look``: pre, post and their sum)."""
        pre, post, both = look
        inner = max(0, width - 2 * padding)
        plain = cell if isinstance(cell, str) else cell.plain
        length = len(plain) if plain.isascii() else cell_len(plain)  # ASCII: a cell a character
        if length > inner:
            cell = Text(plain, justify="right" if right else None) if isinstance(cell, str) else cell.copy()
            cell.truncate(inner)
            plain, length = cell.plain, cell.cell_len
        justify = ("right" if right else None) if isinstance(cell, str) else cell.justify
        gap = inner - length
        left = gap if justify == "right" else gap // 2 if justify == "center" else 0
        before, after = " " * (padding + left), " " * (gap - left + padding)
        outer = both + meta
        if isinstance(cell, str):
            return [Segment(before + plain + after, outer)]
        if cell.spans:
            body = [
                Segment(s.text, pre + s.style + post + meta) for s in cell.render(self.app.console, end="")
            ]
            return [Segment(before, outer), *body, Segment(after, outer)]
        style = self._text_style(cell.style)
        if not style:
            return [Segment(before + plain + after, outer)]
        return [Segment(before, outer), Segment(plain, pre + style + post + meta), Segment(after, outer)]

    def _text_style(self, style: str | Style) -> Style:
        """A cell's own style (``bold yellow``, a status colour) as a Style, parsed once."""
        parsed = self._text_styles.get(style)
        if parsed is None:
            parsed = self._text_styles[style] = (
                style if isinstance(style, Style) else self.app.console.get_style(style, default=Style.null())
            )
        return parsed
