"""What every ``mlbox`` command shares: the lazily opened services and how values print.

Commands receive a `Context` (settings read once at the entry point, services
opened on first use, so ``mlbox --version`` opens nothing) and print through
the helpers here, so timestamps and numbers read the same in every listing
(`when` is `mlbox.timefmt.when`, the spelling the TUI's detail panes share).

Listings go through `print_table` and progress through `progress_bar`, both
rich, so every command looks alike: a table always has its header (an empty
listing prints the header and says so), and printed to a pipe or a file it is
plain aligned text, one row a line, never wrapped, that ``awk`` and
``str.split`` read; a progress bar is drawn only on a terminal's stderr.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click
import msgspec

from mlbox.settings import Settings
from mlbox.textsafe import visible
from mlbox.timefmt import when as when

if TYPE_CHECKING:
    import rich.progress

    from mlbox.services import Services


class Context:
    """Settings read once; services opened on first use (``--version`` opens nothing)."""

    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self._services: Services | None = None

    @property
    def services(self) -> Services:
        if self._services is None:
            from mlbox.services import Services  # every service module: not for `mlbox --help`

            self._services = Services.open(self.settings)
        return self._services


pass_ctx = click.make_pass_decorator(Context, ensure=True)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def echo_json(data: Any) -> None:
    click.echo(msgspec.json.encode(data).decode())


def fmt(v: float | None) -> str:
    return "nan" if v is None else f"{v:.6g}"


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    empty: str,
    right: Collection[str] = (),
    gap: int = 2,
) -> int:
    """Prints a listing with its header; with no rows, the header and then ``empty`` (e.g. ``no runs``).

    Cells are user text (run names, messages): control characters are shown escaped
    (`mlbox.textsafe.visible`), so a name cannot move the cursor or set the
    terminal's title. Columns named in ``right`` are right-aligned (ids, counts, numbers). On a
    terminal the header is bold and the table fits the window; elsewhere the
    width is unbounded, so a long cell never wraps a row onto two lines, and
    trailing spaces are cut. Returns the number of rows printed.
    """
    from rich.console import Console
    from rich.table import Table

    terminal = sys.stdout.isatty()
    table = Table(box=None, show_header=True, header_style="bold" if terminal else "", pad_edge=False)
    table.padding = (0, gap, 0, 0)
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left", no_wrap=not terminal)
    count = 0
    for row in rows:
        table.add_row(*("" if v is None else visible(str(v)) for v in row))
        count += 1
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=terminal,
        width=None if terminal else 1 << 16,
        highlight=False,
        emoji=False,
        markup=False,
        soft_wrap=not terminal,
    )
    console.print(table)
    for line in buffer.getvalue().splitlines():
        click.echo(line.rstrip())
    if not count:
        click.echo(empty)
    return count


def progress_bar(unit: str) -> rich.progress.Progress:
    """A rich progress bar counting ``unit`` on stderr, drawn only when stderr is a terminal.

    A log file or a pipe gets nothing from it (no bar frames between the
    lines a script reads); the command's summary line says what was done.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )
