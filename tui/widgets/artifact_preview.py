"""The artifact preview dialog of run detail: a text, a table or an image, and how to open it."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from mlbox.tui.views import format as fmt
from mlbox.tui.views.artifact_preview import Preview


class ArtifactPreview(ModalScreen[None]):
    DEFAULT_CSS = """
    ArtifactPreview {
        align: center middle;
    }
    ArtifactPreview > Vertical {
        width: 90%;
        height: 90%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    ArtifactPreview #preview-note {
        color: $text-muted;
        height: auto;
    }
    ArtifactPreview #preview-body, ArtifactPreview DataTable {
        height: 1fr;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "close", "Close")]

    def __init__(self, path: str, size: int, preview: Preview) -> None:
        super().__init__()
        self.path = path
        self.bytes = size
        self.preview = preview

    def compose(self) -> ComposeResult:
        p = self.preview
        with Vertical():
            yield Static(fmt.inert(p.note), id="preview-note")
            if p.columns:
                table: DataTable[Text] = DataTable(zebra_stripes=True, id="preview-table")
                for i, column in enumerate(p.columns):
                    table.add_column(fmt.inert(column, "bold"), key=str(i))
                for row in p.rows:
                    cells = [fmt.inert(c) for c in row[: len(p.columns)]]
                    cells += [Text("")] * (len(p.columns) - len(cells))
                    table.add_row(*cells)
                yield table
            else:
                with VerticalScroll(id="preview-body"):
                    yield Static(p.text or Text(""), id="preview-text", markup=False)

    def on_mount(self) -> None:
        box = self.query_one(Vertical)
        box.border_title = fmt.inert(f"{self.path}  ·  {fmt.size(self.bytes)}")
        box.border_subtitle = "esc closes"
        focus = self.query("#preview-table, #preview-body")
        if focus:
            focus.first().focus()

    def action_close(self) -> None:
        self.dismiss(None)
