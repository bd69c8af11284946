"""The one error dialog of the TUI: every `MlboxError` a screen meets ends here.

Modal, so the user reads the message and dismisses it (Enter or Escape)
before going on; the screen behind keeps its state.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from mlbox.store.errors import MlboxError
from mlbox.tui.views.format import inert


class ErrorDialog(ModalScreen[None]):
    DEFAULT_CSS = """
    ErrorDialog {
        align: center middle;
        background: $background 60%;
    }
    ErrorDialog > #dialog {
        width: 72;
        max-width: 90%;
        height: auto;
        border: thick $error;
        background: $surface;
        padding: 1 2;
    }
    ErrorDialog #title {
        text-style: bold;
        color: $error;
        margin-bottom: 1;
    }
    ErrorDialog #field {
        color: $text-muted;
        margin-top: 1;
    }
    ErrorDialog Button {
        margin-top: 1;
        width: 100%;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_dialog", "Close"),
        Binding("enter", "dismiss_dialog", "Close", show=False),
    ]

    def __init__(self, error: MlboxError) -> None:
        super().__init__()
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(type(self.error).__name__, id="title")
            yield Static(inert(self.error.message, keep="\n"), id="message")  # it may quote user input
            if self.error.field:
                yield Static(inert(f"field: {self.error.field}"), id="field")
            yield Button("OK", variant="error", id="ok")

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_dismiss_dialog(self) -> None:
        self.dismiss(None)
