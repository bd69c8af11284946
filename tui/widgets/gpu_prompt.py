"""Asks how many GPUs a new notebook server should hold; answers the number, or None on Escape.

The count is checked as typed (a whole number from 0 to the GPUs there are),
so the service is only asked for what it can place.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.validation import Integer
from textual.widgets import Input, Static


class GpuPrompt(ModalScreen[int | None]):
    DEFAULT_CSS = """
    GpuPrompt {
        align: center middle;
        background: $background 60%;
    }
    GpuPrompt > #dialog {
        width: 60;
        max-width: 90%;
        height: auto;
        border: thick $accent;
        background: $surface;
        padding: 1 2;
    }
    GpuPrompt #title {
        text-style: bold;
        margin-bottom: 1;
    }
    GpuPrompt #hint {
        color: $text-muted;
        margin-top: 1;
    }
    GpuPrompt Input {
        border: tall $accent;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, total: int, free: int) -> None:
        super().__init__()
        self.total = total
        self.free = free

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Start a JupyterLab server", id="title", markup=False)
            yield Input(
                value="0",
                placeholder="GPUs",
                type="integer",
                validators=[Integer(minimum=0, maximum=self.total)],
                id="gpus",
            )
            yield Static(
                f"GPUs to hold: 0 to {self.total} ({self.free} free now; more waits in the queue)\n"
                "Enter to start, Esc to cancel",
                id="hint",
                markup=False,
            )

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        event.stop()
        result = event.validation_result
        if result is not None and not result.is_valid:
            self.notify(
                f"GPUs must be a whole number from 0 to {self.total}", title="GPUs", severity="warning"
            )
            return
        self.dismiss(int(event.value or "0"))

    def action_cancel(self) -> None:
        self.dismiss(None)
