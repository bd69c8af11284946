"""The live tail of one job's log: the last lines, following new output while asked to.

The screen reads the log by offset in a worker and hands the lines it keeps
(`mlbox.tui.views.jobs.LogTail`); this widget only shows them. While
following, it stays scrolled to the end; paused, it keeps still so the user
can scroll back. Lines and the job's name are shown as text (`inert`): a log
or a name never reaches the terminal as markup or escape sequences.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import Log

from mlbox.textsafe import visible
from mlbox.tui.views.format import inert


class LogTailView(Log):
    DEFAULT_CSS = """
    LogTailView {
        border: round $panel-lighten-2;
        height: 1fr;
        overflow: auto;
    }
    LogTailView:focus {
        border: round $accent;
    }
    """

    def __init__(self, *, max_lines: int, id: str | None = None) -> None:
        super().__init__(max_lines=max_lines, id=id)
        self.shown: list[str] = []
        self.follow = True
        self.job_id: int | None = None

    def show(self, lines: Sequence[str]) -> None:
        """Show ``lines`` (the whole tail, a few hundred lines at most: rewriting it is cheap)."""
        lines = list(lines)
        if lines == self.shown:
            return
        self.clear()
        self.write_lines([visible(line) for line in lines], scroll_end=self.follow)
        self.shown = lines
        if self.follow:  # again once laid out: the scrollbar may only now exist (overflow auto)
            self.call_after_refresh(self.scroll_end, animate=False, x_axis=False)

    def set_title(self, job: str | None, *, follow: bool) -> None:
        self.follow = follow
        self.auto_scroll = follow
        self.border_title = inert(f"log of {job}") if job else "log"  # a job name is text, not markup
        self.border_subtitle = "following (l: pause)" if follow else "paused (l: follow)"
