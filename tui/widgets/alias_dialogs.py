"""The two small questions before an alias changes: which name to set, which alias to delete.

Each is a modal that answers with `dismiss` (None when the user backs out
with Escape); neither touches the registry: the screen that asked checks
the answer, asks for confirmation and moves the alias.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from mlbox.tui.views.format import inert

DIALOG_CSS = """
{name} {{
    align: center middle;
    background: $background 60%;
}}
{name} > #dialog {{
    width: 60;
    max-width: 90%;
    height: auto;
    border: thick $accent;
    background: $surface;
    padding: 1 2;
}}
{name} #title {{
    text-style: bold;
    margin-bottom: 1;
}}
{name} #hint {{
    color: $text-muted;
    margin-top: 1;
}}
"""


class AliasPrompt(ModalScreen[str | None]):
    """Asks for the alias to point at a version; answers the name as typed (stripped)."""

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="AliasPrompt")
        + """
    AliasPrompt Input {
        border: tall $accent;
    }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, model: str, version: int, aliases: Mapping[str, int]) -> None:
        super().__init__()
        self.model = model
        self.version = version
        self.aliases = dict(aliases)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(inert(f"Set an alias on {self.model} version {self.version}"), id="title")
            yield Input(placeholder="alias, e.g. challenger", id="alias", select_on_focus=False)
            now = "  ".join(f"{a}→{v}" for a, v in self.aliases.items()) or "none yet"
            yield Static(
                inert(
                    f"lower case letters, digits, '_' or '-'\nEnter to go on, Esc to cancel\naliases now: {now}",
                    keep="\n",
                ),
                id="hint",
            )

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class AliasChooser(ModalScreen[str | None]):
    """Asks which of a model's aliases to delete; answers the alias."""

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="AliasChooser")
        + """
    AliasChooser OptionList {
        height: auto;
        max-height: 12;
    }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, model: str, aliases: Mapping[str, int], preferred: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.aliases = dict(aliases)
        self.preferred = preferred
        """The alias highlighted first (one on the selected version)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(inert(f"Delete which alias of {self.model}?"), id="title")
            yield OptionList(
                *(Option(inert(f"{alias} → {version}"), id=alias) for alias, version in self.aliases.items()),
                id="aliases",
            )
            yield Static("Enter to choose, Esc to cancel", id="hint", markup=False)

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        names = list(self.aliases)
        if self.preferred in names:
            options.highlighted = names.index(self.preferred)
        options.focus()

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
