"""The sort picker: sort the runs table by a column chosen from a list, either way.

Enter sorts by the highlighted column in its natural direction (numbers and
times high to low, names a to z; the column sorted by now flips), ``d`` high
to low, ``a`` low to high. The columns on screen come first, then the rest the
scope has, so a metric can be sorted by without showing it first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ScreenResultCallbackType
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from mlbox.tui.views import format as fmt
from mlbox.tui.views.run_columns import Column
from mlbox.tui.widgets.kept_dialog import KeptDialog

SortChoice = tuple[str, bool]
"""(column key, descending)"""
KEPT = "sort-picker"
"""The name the picker is installed under (`KeptDialog`)."""


def sortable(columns: Sequence[Column]) -> list[Column]:
    """The columns that sort, each once, in order."""
    seen: set[str] = set()
    kept: list[Column] = []
    for column in columns:
        if column.sort is not None and column.key not in seen:
            seen.add(column.key)
            kept.append(column)
    return kept


class SortPicker(KeptDialog[SortChoice | None]):
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
        self.columns = sortable(columns)
        self.current = current
        self.descending = descending

    @classmethod
    def shown(
        cls,
        app: App[Any],
        columns: Sequence[Column],
        current: str | None,
        descending: bool,
        callback: ScreenResultCallbackType[SortChoice | None],
    ) -> SortPicker:
        """Show the picker for ``columns``, sorted by ``current`` now: the one built before, turned."""
        picker = cls.kept(app, KEPT)
        if picker is None:
            picker = cls(columns, current, descending)
        else:
            picker.turn(columns, current, descending)
        picker.show(app, KEPT, callback)
        return picker

    def turn(self, columns: Sequence[Column], current: str | None, descending: bool) -> None:
        """Show what a new picker for these arguments would: its options, "now" mark and highlight."""
        columns = sortable(columns)
        options = self.query_one(OptionList)
        if columns != self.columns:
            self.columns, self.current, self.descending = columns, current, descending
            options.set_options(self._options())
        elif (current, descending) != (self.current, self.descending):
            marked = {self.current, current}
            self.current, self.descending = current, descending
            for column in self.columns:
                if column.key in marked:
                    options.replace_option_prompt(column.key, self._prompt(column))
        self._highlight()

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
            yield OptionList(*self._options())
        yield Footer()

    def _options(self) -> list[Option]:
        return [Option(self._prompt(c), id=c.key) for c in self.columns]

    def on_mount(self) -> None:
        self.query_one(Vertical).border_title = "Sort by"
        self._highlight()
        self.query_one(OptionList).focus()

    def _highlight(self) -> None:
        """The column sorted by now, else the first."""
        keys = [c.key for c in self.columns]
        self.query_one(OptionList).highlighted = keys.index(self.current) if self.current in keys else 0

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
