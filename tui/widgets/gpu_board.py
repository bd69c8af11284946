"""The GPU board: every GPU of the inventory, who holds it and, with NVML, how busy it is.

Training jobs, sweep trials and notebooks draw GPUs from the one lease table,
so this board is where a user sees who holds which GPU. It draws rows the
screen computed (`mlbox.tui.views.jobs.board_rows`) and keeps them in `rows`,
so a test can read what is shown.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from mlbox.tui.views.format import inert
from mlbox.tui.views.jobs import HOLDER_STYLES, GpuRow

NO_GPUS = "no GPUs: jobs run on CPU (set MLBOX_GPUS=2 to simulate two)"


class GpuBoard(Static):
    DEFAULT_CSS = """
    GpuBoard {
        height: auto;
        min-height: 3;
        border: round $panel-lighten-2;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("reading the GPUs…", id=id)
        self.rows: list[GpuRow] = []
        self.border_title = "GPUs"

    def show(self, rows: Sequence[GpuRow]) -> None:
        rows = list(rows)
        if rows == self.rows and self.rows:
            return
        self.rows = rows
        if not rows:
            self.update(Text(NO_GPUS, style="dim"))
            self.border_subtitle = ""
            return
        leased = sum(1 for r in rows if r.kind != "free")
        self.border_subtitle = f"{leased} of {len(rows)} leased"
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column("gpu", no_wrap=True)
        table.add_column("holder", ratio=1, overflow="ellipsis", no_wrap=True)
        table.add_column("held", justify="right", no_wrap=True)
        table.add_column("usage", justify="right", no_wrap=True)
        for r in rows:
            table.add_row(
                Text(f"GPU {r.index}", style="bold"),
                inert(r.holder, style=HOLDER_STYLES.get(r.kind, "")),  # holds a job's name
                Text(r.held, style="dim"),
                Text(r.usage, style="dim" if r.usage == "simulated" else ""),
            )
        self.update(table)
