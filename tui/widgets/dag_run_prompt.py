"""Asks which pipeline to start and with what parameters; answers ``(ref, params)`` or None.

The parameters are a JSON object, checked as typed is submitted (a bad one is named and
nothing is answered), so the service is only asked for what it can read; it still checks the
names and types against the pipeline's signature.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


def parse_params(text: str) -> dict[str, Any]:
    """A JSON object (empty text: no parameters); ValueError naming what is wrong."""
    if not text.strip():
        return {}
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"parameters are not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError('parameters must be a JSON object, e.g. {"n": 3}')
    return value


class RunPrompt(ModalScreen[tuple[str, dict[str, Any]] | None]):
    DEFAULT_CSS = """
    RunPrompt { align: center middle; background: $background 60%; }
    RunPrompt > #dialog {
        width: 90; max-width: 95%; height: auto; border: thick $accent; background: $surface; padding: 1 2;
    }
    RunPrompt #title { text-style: bold; margin-bottom: 1; }
    RunPrompt .hint { color: $text-muted; }
    RunPrompt Input { border: tall $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, refs: list[str], ref: str = "", params: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.refs = refs
        self.ref = ref or (refs[0] if refs else "")
        self.params = params or {}

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Start a pipeline run", id="title", markup=False)
            yield Static("pipeline (package.module:name)", classes="hint", markup=False)
            yield Input(value=self.ref, placeholder="package.module:name", id="ref")
            yield Static("parameters (a JSON object)", classes="hint", markup=False)
            yield Input(value=msgspec.json.encode(self.params).decode(), placeholder="{}", id="params")
            known = ", ".join(self.refs[:5]) if self.refs else "none yet"
            yield Static(
                f"known: {known}\nEnter to continue (a confirmation follows), Esc to cancel",
                classes="hint",
                markup=False,
            )

    def on_mount(self) -> None:
        self.query_one("#params" if self.ref else "#ref", Input).focus()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        event.stop()
        ref = self.query_one("#ref", Input).value.strip()
        if not ref:
            self.notify("name the pipeline: package.module:name", title="Pipeline", severity="warning")
            return
        try:
            params = parse_params(self.query_one("#params", Input).value)
        except ValueError as exc:
            self.notify(str(exc), title="Parameters", severity="warning", markup=False)
            return
        self.dismiss((ref, params))

    def action_cancel(self) -> None:
        self.dismiss(None)
