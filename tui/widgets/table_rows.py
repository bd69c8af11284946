"""Refilling a `DataTable` from fresh rows without losing the user's place.

Polling screens re-read their service every few seconds; replacing the rows
each time would make the cursor jump and the table flicker. `fill` leaves the
table alone when nothing changed and otherwise puts the cursor back on the
same key (or the same position when that row is gone).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.coordinate import Coordinate
from textual.widgets import DataTable


def cursor_key(table: DataTable[Any]) -> str | None:
    """The key of the row under the cursor; None for an empty table."""
    if not table.row_count:
        return None
    row = min(max(table.cursor_row, 0), table.row_count - 1)
    return table.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value


def fill(table: DataTable[Any], rows: Sequence[tuple[str, Sequence[Any]]], *, keep: str | None) -> bool:
    """Show ``rows``; True when the table changed.

    The same keys in the same order: only the changed cells are updated, in
    place (an age or idle time ticking must not rebuild the table each poll).
    Otherwise the rows are replaced and the cursor put back on ``keep`` (or
    where it was).
    """
    current = [(str(k.value), list(table.get_row(k))) for k in table.rows]
    wanted = [(key, list(cells)) for key, cells in rows]
    if current == wanted:
        return False
    if [key for key, _ in current] == [key for key, _ in wanted]:
        columns = list(table.columns)
        for (key, old), (_, new) in zip(current, wanted, strict=True):
            for column, before, after in zip(columns, old, new, strict=False):
                if before != after:
                    table.update_cell(key, column, after, update_width=True)
        return True
    row = table.cursor_row
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    keys = [key for key, _ in rows]
    if keep in keys:
        table.move_cursor(row=keys.index(keep), animate=False)
    elif rows:
        table.move_cursor(row=min(max(row, 0), len(rows) - 1), animate=False)
    return True
