"""One model version in full: lineage, signature, files, and the model's alias history.

The pane only shows what it is given (a version and the model's history);
the Models screen fetches both in a worker. The text builders are pure
functions over registry values; a tensor reads as `TensorSpec.brief` has it,
as in the versions table (`Signature.brief`) and the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from mlbox.registry.schemas import AliasMove, ModelVersion
from mlbox.registry.signature import Schema, Signature
from mlbox.textsafe import visible
from mlbox.tui.views import format as fmt

MAX_SCHEMA_LINES = 8
SHA_PREFIX = 12


def schema_lines(schema: Schema, unnamed: str = "input") -> list[str]:
    """One line per tensor or column (the first `MAX_SCHEMA_LINES`, then a count of the rest);
    a single unnamed tensor is called ``unnamed``."""
    if schema.kind == "columns":
        lines = [f"{c.name}: {c.dtype}" for c in schema.columns]
    else:
        lines = [f"{t.name or unnamed}: {t.brief()}" for t in schema.tensors]
    if len(lines) > MAX_SCHEMA_LINES:
        more = len(lines) - MAX_SCHEMA_LINES + 1
        lines = [*lines[: MAX_SCHEMA_LINES - 1], f"… and {more} more"]
    return lines


def lineage_text(mv: ModelVersion) -> Text:
    """Where the version came from: run, experiment, source, code version, datasets."""
    lin = mv.lineage
    text = Text()

    def row(label: str, value: str | Text, style: str = "") -> None:
        text.append(f"{label:<11}", style="dim")
        if isinstance(value, str):
            text.append(visible(value), style=style)  # a source, a description: user text
        else:
            text.append_text(value)
        text.append("\n")

    row("version", f"{mv.version}  {mv.flavor}", "bold")
    row("created", fmt.when(mv.created_at))
    if lin.run_id is not None:
        row(
            "run",
            Text.assemble(
                (f"#{lin.run_id}", "bold"), fmt.inert(f" {lin.run_name or ''}"), ("  (enter)", "dim")
            ),
        )
        row("experiment", lin.experiment or "-")
    row("source", lin.source)
    if lin.git_sha:
        git = fmt.inert(lin.git_sha[:SHA_PREFIX])
        if lin.git_dirty:
            git.append(" dirty", style="bold #d29922")
        row("git", git)
    elif lin.run_id is not None:
        row("git", "-")
    if lin.datasets:
        text.append("datasets\n", style="dim")
        for d in lin.datasets:
            text.append(visible(f"  {d.context}/{d.name}  "))
            text.append(visible(d.digest[:SHA_PREFIX]), style="dim")
            text.append("\n")
    if mv.description:
        row("about", mv.description)
    text.rstrip()
    return text


def signature_text(signature: Signature | None) -> Text:
    if signature is None:
        return Text("none: registered without an example input", style="dim")
    text = Text()
    parts: list[tuple[str, str, Schema]] = [("inputs", "input", signature.inputs)]
    if signature.outputs is not None:
        parts.append(("outputs", "output", signature.outputs))
    for label, unnamed, schema in parts:
        text.append(f"{label} ({schema.kind})\n", style="dim")
        for line in schema_lines(schema, unnamed):
            text.append(f"  {visible(line)}\n")  # column names come from the user's data
    text.rstrip()
    return text


def move_text(move: AliasMove) -> str:
    """``2 → 3``; a first set reads ``– → 1`` and a deletion ``3 → –``."""
    before = "–" if move.from_version is None else str(move.from_version)
    after = "–" if move.to_version is None else str(move.to_version)
    return f"{before} → {after}"


def _right(text: str) -> Text:
    return Text(text, justify="right")


class VersionDetail(Horizontal):
    DEFAULT_CSS = """
    VersionDetail {
        height: 1fr;
    }
    VersionDetail > Vertical {
        width: 1fr;
    }
    VersionDetail #version-tables {
        margin-left: 1;
    }
    VersionDetail Static {
        border: round $panel-lighten-2;
        padding: 0 1;
        height: auto;
    }
    VersionDetail #lineage {
        min-height: 5;
    }
    VersionDetail DataTable {
        border: round $panel-lighten-2;
        height: auto;
    }
    VersionDetail DataTable:focus {
        border: round $accent;
    }
    VersionDetail #files {
        max-height: 7;
    }
    VersionDetail #history {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shown: tuple[ModelVersion | None, tuple[AliasMove, ...]] | None = None
        """What is on screen; the periodic re-read redraws only what changed."""

    def compose(self) -> ComposeResult:
        with Vertical(id="version-info"):
            yield Static("", id="lineage")
            yield Static("", id="signature")
        with Vertical(id="version-tables"):
            files: DataTable[str | Text] = DataTable(id="files", cursor_type="row", zebra_stripes=True)
            files.add_columns("path", "size", "sha256")
            yield files
            history: DataTable[str | Text] = DataTable(id="history", cursor_type="row", zebra_stripes=True)
            history.add_columns("alias", "move", "when", "note")
            yield history

    def on_mount(self) -> None:
        self.query_one("#lineage", Static).border_title = "lineage"
        self.query_one("#signature", Static).border_title = "signature"
        self.query_one("#files", DataTable).border_title = "files"
        self.query_one("#history", DataTable).border_title = "alias history"

    def show(self, mv: ModelVersion | None, history: Sequence[AliasMove]) -> None:
        """Show ``mv`` (None: nothing selected) and the model's alias moves, newest first."""
        if self.shown == (mv, tuple(history)):
            return
        self.shown = (mv, tuple(history))
        lineage = self.query_one("#lineage", Static)
        signature = self.query_one("#signature", Static)
        files: DataTable[str | Text] = self.query_one("#files", DataTable)
        files.clear()
        if mv is None:
            lineage.update(Text("no version selected", style="dim"))
            lineage.border_title = "lineage"
            signature.update("")
        else:
            lineage.update(lineage_text(mv))
            lineage.border_title = fmt.inert(f"lineage · {mv.name} v{mv.version}")
            signature.update(signature_text(mv.signature))
            files.add_rows(
                (fmt.inert(f.path), _right(fmt.size(f.size)), Text(f.sha256[:SHA_PREFIX], style="dim"))
                for f in mv.files
            )
        table: DataTable[str | Text] = self.query_one("#history", DataTable)
        row = table.cursor_row
        table.clear()
        table.add_rows(
            (fmt.inert(m.alias), move_text(m), fmt.when(m.moved_at), fmt.inert(m.note, "dim"))
            for m in reversed(history)
        )
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1), animate=False)
