"""The sort picker: sort the runs table by a column chosen from a list, either way.

Enter sorts by the highlighted column in its natural direction (numbers and
times high to low, names a to z; the column sorted by now flips), ``d`` high
to low, ``a`` low to high. The columns on screen come first, then the rest the
scope has, so a metric can be sorted by without showing it first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from mlbox.tui.views import format as fmt
from mlbox.tui.views.run_columns import Column

SortChoice = tuple[str, bool]
"""(column key, descending)"""


class SortPicker(ModalScreen[SortChoice | None]):
    DEFAULT_CSS = """
    SortPicker {
        align: center middle;
        background: $background;  /* opaque: a see-through overlay draws the screen under it on every paint */
    }
    SortPicker > Vertical {
        width: 56;
        max-width: 90%;
        height: 80%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    SortPicker #sort-help {
        color: $text-muted;
        height: auto;
    }
    SortPicker OptionList {
        height: 1fr;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "sort(True)", "High→low"),
        Binding("a", "sort(False)", "Low→high"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, columns: Sequence[Column], current: str | None, descending: bool) -> None:
        super().__init__()
        seen: set[str] = set()
        self.columns: list[Column] = []
        for column in columns:
            if column.sort is not None and column.key not in seen:
                seen.add(column.key)
                self.columns.append(column)
        self.current = current
        self.descending = descending

    def _prompt(self, column: Column) -> Text:
        label = fmt.inert(column.label)
        kind = column.key.partition(":")[0]
        if kind in ("metric", "param"):
            label.append(f"  {kind}", style="dim")
        if column.key == self.current:
            label.append("  ▼ now" if self.descending else "  ▲ now", style="bold")
        return label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("enter sorts (again: flips) · d high→low · a low→high · esc cancels", id="sort-help")
            yield OptionList(*(Option(self._prompt(c), id=c.key) for c in self.columns))
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Vertical).border_title = "Sort by"
        options = self.query_one(OptionList)
        keys = [c.key for c in self.columns]
        if self.current in keys:
            options.highlighted = keys.index(self.current)
        options.focus()

    def _highlighted(self) -> Column | None:
        index = self.query_one(OptionList).highlighted
        return None if index is None else self.columns[index]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        column = self.columns[event.option_index]
        if column.key == self.current:
            self.dismiss((column.key, not self.descending))
        else:
            self.dismiss((column.key, column.descending_first))

    def action_sort(self, descending: bool) -> None:
        column = self._highlighted()
        if column is not None:
            self.dismiss((column.key, descending))

    def action_cancel(self) -> None:
        self.dismiss(None)
