"""The column chooser: show, hide and pin the runs table's columns.

A dialog over the table, a checklist of every column the scope can show
(space shows or hides one, ``p`` pins it to the left edge, where it stays
while the table scrolls sideways); enter or escape closes it with the choice.

`ColumnChooser.shown` shows the chooser built before (a `KeptDialog`),
turned to the columns, the shown and the pinned of now: its options are
rebuilt only when the columns changed (another experiment), else only the
checks and pin marks that differ are set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ScreenResultCallbackType
from textual.widgets import Footer, SelectionList, Static
from textual.widgets.selection_list import Selection

from mlbox.tui.views import format as fmt
from mlbox.tui.views.run_columns import Column
from mlbox.tui.widgets.kept_dialog import KeptDialog

PIN = "⇤ pinned"
KEPT = "column-chooser"
"""The name the chooser is installed under (`KeptDialog`)."""


@dataclass(frozen=True)
class ColumnChoice:
    shown: list[str]
    """Keys of the columns to show, in the chooser's order."""
    pinned: list[str]


def prompt(column: Column, pinned: bool) -> Text:
    kind = column.key.partition(":")[0]
    label = Text.assemble(
        fmt.inert(column.label), (f"  {kind}" if kind in ("metric", "param") else "", "dim")
    )
    if pinned:
        label.append(f"  {PIN}", style="bold cyan")
    return label


class ColumnChooser(KeptDialog[ColumnChoice | None]):
    DEFAULT_CSS = """
    ColumnChooser {
        align: center middle;
        background: $background;  /* opaque: a see-through overlay draws the screen under it on every paint */
    }
    ColumnChooser > Vertical {
        width: 60;
        max-width: 90%;
        height: 80%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    ColumnChooser #chooser-help {
        color: $text-muted;
        height: auto;
    }
    ColumnChooser SelectionList {
        height: 1fr;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pin", "Pin/unpin"),
        Binding("escape", "done", "Done"),
        Binding("v", "done", "Done", show=False),
        Binding("a", "show_all", "Show all"),
    ]

    def __init__(self, columns: Sequence[Column], shown: Sequence[str], pinned: Sequence[str]) -> None:
        super().__init__()
        self.columns = [c for c in columns if c.key != "mark"]
        self.initially_shown = set(shown)
        self.pinned = [k for k in pinned if any(c.key == k for c in self.columns)]

    @classmethod
    def shown(
        cls,
        app: App[Any],
        columns: Sequence[Column],
        shown: Sequence[str],
        pinned: Sequence[str],
        callback: ScreenResultCallbackType[ColumnChoice | None],
    ) -> ColumnChooser:
        """Show the chooser of ``columns``, ``shown`` and ``pinned`` now: the one built before, turned."""
        chooser = cls.kept(app, KEPT)
        if chooser is None:
            chooser = cls(columns, shown, pinned)
        else:
            chooser.turn(columns, shown, pinned)
        chooser.show(app, KEPT, callback)
        return chooser

    def turn(self, columns: Sequence[Column], shown: Sequence[str], pinned: Sequence[str]) -> None:
        """Show what a new chooser for these arguments would: its options, checks, pins, highlight."""
        columns = [c for c in columns if c.key != "mark"]
        pinned = [k for k in pinned if any(c.key == k for c in columns)]
        chooser = self.selection_list
        with chooser.prevent(SelectionList.SelectedChanged):
            if columns != self.columns:
                self.columns, self.initially_shown, self.pinned = columns, set(shown), pinned
                chooser.clear_options()
                chooser.add_options(self._selections())
            else:
                was_pinned, self.pinned, self.initially_shown = set(self.pinned), pinned, set(shown)
                selected = set(chooser.selected)
                for index, column in enumerate(self.columns):
                    if (column.key in selected) != (column.key in self.initially_shown):
                        chooser.toggle(column.key)
                    if (column.key in was_pinned) != (column.key in self.pinned):
                        chooser.replace_option_prompt_at_index(
                            index, prompt(column, column.key in self.pinned)
                        )
        chooser.highlighted = 0
        chooser.scroll_home(animate=False)

    def _selections(self) -> list[Selection[str]]:
        return [
            Selection(prompt(c, c.key in self.pinned), c.key, c.key in self.initially_shown, id=c.key)
            for c in self.columns
        ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                "space shows/hides · p pins to the left · a shows all · esc closes", id="chooser-help"
            )
            yield SelectionList[str](*self._selections())
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Vertical).border_title = "Columns"
        self.query_one(SelectionList).focus()

    @property
    def selection_list(self) -> SelectionList[str]:
        return self.query_one(SelectionList)

    def action_pin(self) -> None:
        chooser = self.selection_list
        if chooser.highlighted is None:
            return
        column = self.columns[chooser.highlighted]
        if column.key in self.pinned:
            self.pinned.remove(column.key)
        else:
            self.pinned.append(column.key)
            chooser.select(column.key)  # a pinned column is a shown one
        chooser.replace_option_prompt_at_index(chooser.highlighted, prompt(column, column.key in self.pinned))

    def action_show_all(self) -> None:
        self.selection_list.select_all()

    def choice(self) -> ColumnChoice:
        selected = set(self.selection_list.selected)
        return ColumnChoice(
            shown=[c.key for c in self.columns if c.key in selected],
            pinned=[k for k in self.pinned if k in selected],
        )

    def action_done(self) -> None:
        self.dismiss(self.choice())
