"""The navigation bar: one entry per working service screen, the current one lit.

Entries are clickable and carry their key; the app passes the list, so a
service's screen appears here the day it works, and never as a placeholder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.content import Content
from textual.widgets import Static


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
        self.update(self.render_entries())

    def render_entries(self) -> Content:
        parts: list[Content] = []
        for e in self.entries:
            style = "bold reverse $primary" if e.mode == self.current else "$text-muted"
            parts.append(
                Content.from_markup(
                    f"[@click=app.switch_mode('{e.mode}')][{style}] $key $title [/][/] ",
                    key=e.key,
                    title=e.title,
                )
            )
        return Content.assemble(*parts)
