"""The help overlay (``?`` or F1): every key the current screen answers, with what it does.

Read from the bindings active when it opened (the focused widget's, the
screen's and the app's), so it never disagrees with what the keys do; a
binding without a description is an implementation detail and is left out.

`HelpOverlay.shown` builds an overlay once per screen class and list of keys
(the focused widget's keys change it) and shows it again the next time:
composing, styling and laying out its table cost more than the 100 ms a key
press may take over a big home (issue 18), showing it again a fraction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static

from mlbox.tui.widgets.kept_styles import KeptStyles

HelpRow = tuple[str, str, str]
"""(where, keys, what it does)"""


def help_rows(bindings: Mapping[str, ActiveBinding], key_display: Mapping[str, str]) -> list[HelpRow]:
    """One row per action, its keys joined ("? / f1"), screen keys first, then the widget's, then global."""
    by_action: dict[tuple[str, str], list[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for key, active in bindings.items():
        binding = active.binding
        if not binding.description or binding.system:
            continue
        ident = (binding.action, binding.description)
        by_action.setdefault(ident, []).append(key_display.get(key, key))
        where.setdefault(ident, _where(active.node))
    order = {"screen": 0, "global": 2}
    rows = [(where[i], " / ".join(dict.fromkeys(keys)), i[1]) for i, keys in by_action.items()]
    return sorted(rows, key=lambda r: order.get(r[0], 1))


def _where(node: object) -> str:
    if isinstance(node, App):
        return "global"
    if isinstance(node, Screen):
        return "screen"
    return type(node).__name__.lower()


class HelpOverlay(KeptStyles, ModalScreen[None]):
    DEFAULT_CSS = """
    HelpOverlay {
        align: center middle;
        background: $background;  /* opaque: a see-through overlay draws the screen under it on every paint */
    }
    HelpOverlay > Vertical {
        width: 64;
        max-width: 95%;
        height: 90%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    HelpOverlay #help-hint {
        color: $text-muted;
        height: auto;
    }
    HelpOverlay DataTable {
        height: 1fr;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,f1,q", "close", "Close"),
    ]

    def __init__(self, title: str, rows: Iterable[HelpRow]) -> None:
        super().__init__()
        self.title_text = title
        self.rows = list(rows)
        self.stacked = False
        """Shown by `shown` and not closed since: another `shown` must not push it again."""

    @classmethod
    def shown(cls, app: App[Any], of: type[Screen[Any]], title: str, rows: Iterable[HelpRow]) -> HelpOverlay:
        """Push the overlay of a screen of class ``of`` titled ``title`` listing ``rows``: the one
        built for that class and those rows before, unless a screen stack still holds it (another
        mode's), then a new one."""
        rows = list(rows)
        name = f"help:{of.__module__}.{of.__qualname__}:{hash(tuple(rows))}"
        overlay = app.get_screen(name) if app.is_screen_installed(name) else None
        if not isinstance(overlay, cls) or overlay.rows != rows or overlay.stacked:
            fresh = cls(title, rows)
            if overlay is None:
                app.install_screen(fresh, name)
            overlay = fresh
        overlay.title_text = title
        overlay.stacked = True
        app.push_screen(overlay)
        return overlay

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("esc or ? closes · ctrl+p opens the command palette", id="help-hint")
            table: DataTable[Text] = DataTable(cursor_type="row", zebra_stripes=True, id="help-keys")
            table.add_column(Text("key", style="bold"), key="key")
            table.add_column(Text("does", style="bold"), key="does")
            table.add_column(Text("where", style="bold"), key="where")
            for where, keys, does in self.rows:
                table.add_row(Text(keys, style="bold cyan"), Text(does), Text(where, style="dim"))
            yield table

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        """Shown (again): the screen's title, the first row (`KeptStyles` skips the restyle)."""
        self.query_one(Vertical).border_title = f"Keys · {self.title_text}"
        self.query_one(DataTable).move_cursor(row=0, animate=False)

    def action_close(self) -> None:
        self.stacked = False
        self.dismiss(None)
