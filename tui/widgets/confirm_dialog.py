"""A yes/no confirmation before an action that changes what is served (an alias move).

Modal and answered with the keyboard: Enter or ``y`` confirms, Escape or
``n`` cancels, so a stray key never moves an alias. The dialog returns the
answer through `dismiss`, and the screen that asked does the work.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from mlbox.tui.views.format import inert


class ConfirmDialog(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmDialog {
        align: center middle;
        background: $background 60%;
    }
    ConfirmDialog > #dialog {
        width: 64;
        max-width: 90%;
        height: auto;
        border: thick $warning;
        background: $surface;
        padding: 1 2;
    }
    ConfirmDialog #title {
        text-style: bold;
        color: $warning;
    }
    ConfirmDialog #change {
        text-style: bold;
        margin: 1 0 0 0;
    }
    ConfirmDialog #detail {
        color: $text-muted;
    }
    ConfirmDialog #buttons {
        height: auto;
        margin-top: 1;
    }
    ConfirmDialog Button {
        width: 1fr;
        margin: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,y", "answer(True)", "Confirm"),
        Binding("escape,n", "answer(False)", "Cancel"),
    ]

    def __init__(self, title: str, change: str, detail: str = "", *, confirm_label: str = "Confirm") -> None:
        super().__init__()
        self.dialog_title = title
        self.change = change
        """What happens, in one line, e.g. ``digits@champion: 2 → 3``."""
        self.detail = detail
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(inert(self.dialog_title), id="title")
            yield Static(inert(self.change, keep="\n"), id="change")  # names a job, a model, a run
            if self.detail:
                yield Static(inert(self.detail, keep="\n"), id="detail")
            with Horizontal(id="buttons"):
                yield Button(f"{self.confirm_label} (y)", variant="warning", id="confirm")
                yield Button("Cancel (n)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#confirm", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm")

    def action_answer(self, confirmed: bool) -> None:
        self.dismiss(confirmed)
