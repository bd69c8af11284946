"""A job in full, in a modal: what runs, with which resources, its attempts, its run and log.

The screen reads the job and its attempts in a worker and hands the lines
(`mlbox.tui.views.jobs.job_details`); the dialog answers ``"run"`` when the
user asks to open the job's tracking run (``o``), else None. Every value is
user text (a name, a command, a message) and is shown `inert`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from mlbox.tui.views.format import inert


class JobDetailDialog(ModalScreen[str | None]):
    DEFAULT_CSS = """
    JobDetailDialog {
        align: center middle;
        background: $background 60%;
    }
    JobDetailDialog > #dialog {
        width: 100;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    JobDetailDialog #body {
        height: auto;
        max-height: 30;
    }
    JobDetailDialog #hint {
        color: $text-muted;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,q", "close", "Close"),
        Binding("o", "open_run", "Open run"),
    ]

    def __init__(self, title: str, rows: Sequence[tuple[str, str]], *, has_run: bool) -> None:
        super().__init__()
        self.dialog_title = title
        self.rows = list(rows)
        self.has_run = has_run

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for label, value in self.rows:
            table.add_row(inert(label), inert(value))
        with Vertical(id="dialog") as dialog:
            dialog.border_title = inert(self.dialog_title)
            with VerticalScroll(id="body"):
                yield Static(table, id="fields")
            hint = "o: open the job's run · " if self.has_run else ""
            yield Static(f"{hint}Esc: close", id="hint", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_open_run(self) -> None:
        if self.has_run:
            self.dismiss("run")
