"""The navigation bar: one entry per working service screen, the current one lit.

Entries are clickable and carry their key; the app passes the list, so a
service's screen appears here the day it works, and never as a placeholder.
Where the full titles do not fit the terminal's width (ten services at 100
columns), the entries other than the current one are cut to `SHORT` letters:
every key stays visible, which is what the bar is for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual import events
from textual.content import Content
from textual.widgets import Static

SHORT = 5
"""Letters kept of a title that is not the current one when the full bar does not fit."""


@dataclass(frozen=True)
class NavEntry:
    mode: str
    title: str
    key: str


class NavBar(Static):
    DEFAULT_CSS = """
    NavBar {
        height: 1;
        background: $panel;
        padding: 0 1;
    }
    """

    def __init__(self, entries: Sequence[NavEntry], current: str) -> None:
        super().__init__()
        self.entries = tuple(entries)
        self.current = current

    def on_mount(self) -> None:
        self.update(self.render_entries(self.content_size.width))

    def on_resize(self, event: events.Resize) -> None:
        self.update(self.render_entries(self.content_size.width))

    def render_entries(self, width: int | None = None) -> Content:
        """The entries, their titles cut (but the current one's) when ``width`` is too narrow."""
        full = self._assemble(short=False)
        if width is None or width <= 0 or full.cell_length <= width:
            return full
        return self._assemble(short=True)

    def _assemble(self, *, short: bool) -> Content:
        parts: list[Content] = []
        for e in self.entries:
            current = e.mode == self.current
            style = "bold reverse $primary" if current else "$text-muted"
            parts.append(
                Content.from_markup(
                    f"[@click=app.switch_mode('{e.mode}')][{style}] $key $title [/][/]"
                    + ("" if short else " "),
                    key=e.key,
                    title=e.title if current or not short else e.title[:SHORT],
                )
            )
        return Content.assemble(*parts)
