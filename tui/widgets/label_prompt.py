"""Asks for a line of text (a comment, a flag's reason); answers it, or None on Escape."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class LabelPrompt(ModalScreen[str | None]):
    DEFAULT_CSS = """
    LabelPrompt {
        align: center middle;
        background: $background 60%;
    }
    LabelPrompt > #dialog {
        width: 70;
        max-width: 90%;
        height: auto;
        border: thick $accent;
        background: $surface;
        padding: 1 2;
    }
    LabelPrompt #title {
        text-style: bold;
        margin-bottom: 1;
    }
    LabelPrompt #hint {
        color: $text-muted;
        margin-top: 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.title_text, id="title", markup=False)
            yield Input(value=self.value, id="text")
            yield Static("Enter saves, Esc cancels", id="hint", markup=False)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
