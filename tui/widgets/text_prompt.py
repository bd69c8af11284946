"""A one-line question in a modal: a name to change, a folder to accept (the Models screen's
export, the Experiments screen's rename). It touches nothing; the screen that asked acts on
the answer."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from mlbox.tui.views.format import inert
from mlbox.tui.widgets.alias_dialogs import DIALOG_CSS


class TextPrompt(ModalScreen[str | None]):
    """Asks for one line of text, offered filled in (a name to change, a folder to accept);
    answers it stripped, or None on Escape or when left empty."""

    DEFAULT_CSS = DIALOG_CSS.format(name="TextPrompt")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str, hint: str) -> None:
        super().__init__()
        self.prompt_title = title
        self.initial = value
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(inert(self.prompt_title), id="title")
            yield Input(self.initial, select_on_focus=False)
            yield Static(inert(self.hint, keep="\n"), id="hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
