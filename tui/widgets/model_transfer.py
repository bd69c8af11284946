"""The questions before a model leaves or enters the registry as an MLflow directory.

`export_prompt` asks where to write a version (`mlbox models export`);
`ImportPrompt` asks which directory to register, under which name, and
whether its pickled code may be trusted (`mlbox models import --trust`).
Each answers with `dismiss` (None on Escape) and touches nothing: the
Models screen runs the export or import in a worker and shows what the
registry said.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Static

from mlbox.tui.widgets.alias_dialogs import DIALOG_CSS
from mlbox.tui.widgets.text_prompt import TextPrompt


@dataclass(frozen=True)
class ImportAnswer:
    folder: Path
    name: str
    trust: bool


def _path(text: str) -> Path:
    return Path(text.strip()).expanduser()


def export_prompt(model: str, version: int, default: Path) -> TextPrompt:
    """Asks for the folder an MLflow model directory is written to (new or empty)."""
    return TextPrompt(
        f"Export {model} version {version} as an MLflow model",
        str(default),
        "a new or empty folder; MLflow and MLServer load it (mlflow models serve -m FOLDER)\n"
        "Enter to export, Esc to cancel",
    )


class ImportPrompt(ModalScreen[ImportAnswer | None]):
    """Asks for an MLflow model directory, the model it becomes a version of, and trust."""

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="ImportPrompt")
        + """
    ImportPrompt Checkbox {
        margin-top: 1;
    }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, name: str = "") -> None:
        super().__init__()
        self.name_default = name

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Import an MLflow model directory", id="title", markup=False)
            yield Input(placeholder="folder with an MLmodel file", id="folder", select_on_focus=False)
            yield Input(
                self.name_default, placeholder="registered model name", id="name", select_on_focus=False
            )
            yield Checkbox("trust pickled code: loading runs its code", id="trust")
            yield Static(
                "sklearn, pytorch, onnx, lightgbm, xgboost, keras, python_function\n"
                "Tab between fields, Enter to import, Esc to cancel",
                id="hint",
                markup=False,
            )

    def on_mount(self) -> None:
        self.query_one("#folder", Input).focus()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        event.stop()
        folder = self.query_one("#folder", Input).value.strip()
        name = self.query_one("#name", Input).value.strip()
        if not folder:
            self.query_one("#folder", Input).focus()
            return
        if not name:
            self.query_one("#name", Input).focus()
            return
        self.dismiss(ImportAnswer(_path(folder), name, self.query_one(Checkbox).value))

    def action_cancel(self) -> None:
        self.dismiss(None)
