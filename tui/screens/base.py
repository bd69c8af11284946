"""What every mlbox screen shares: the header, navigation, status bar and footer.

A screen composes its body only; the frame around it is the same everywhere,
and so is the way a worker reports a refused service call (`fail`).

So is the way a screen reads its service. A worker answers with a message,
and an answer can arrive after the question was asked again (the cursor
moved on, a refresh came first): `ask` numbers each question of a kind and
`stale` tells an answer to an older one, so a slow read never overwrites a
newer one. A polling screen sets `reading` while its read is under way and
re-reads on `poll`, which skips a tick while a read is still under way or
a dialog covers the screen; a refused read ends the reading. (Not Textual's
`loading`: set on a screen, that covers the whole screen with a spinner.)

A toast (`notify`) shows its text as it is, never as markup: it names user
things (jobs, models, aliases); so do tables and panes (`views.format.inert`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual import events
from textual.app import ComposeResult, SystemCommand
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Header

from mlbox.store.errors import MlboxError
from mlbox.textsafe import visible
from mlbox.tracking.service import TrackingService
from mlbox.tui.context import TuiContext
from mlbox.tui.messages import ServiceFailed
from mlbox.tui.widgets.kept_styles import KeptStyles
from mlbox.tui.widgets.keys_footer import KeysFooter
from mlbox.tui.widgets.nav_bar import NavBar
from mlbox.tui.widgets.status_bar import StatusBar


class MlboxScreen(KeptStyles, Screen[None]):
    SECTION: ClassVar[str] = ""
    """The navigation entry lit while this screen shows (its service's mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = False
        """A read is under way: the periodic re-read (`poll`) waits for it."""
        self._asked: dict[str, int] = {}
        self.ahead = False
        """Built ahead, off screen (`MlboxApp.build_ahead`): its first read waits until it shows."""
        self._unread = False
        # (`KeptStyles` starts the CSS count at the app's: Textual re-parses all the CSS and
        # restyles every widget of every screen before it first shows a new mode's screen whose
        # count is -1, a few hundred ms on the first press of a section key, for nothing.)

    @property
    def ctx(self) -> TuiContext:
        return TuiContext.of(self.app)

    @property
    def tracking(self) -> TrackingService:
        return self.ctx.services.tracking

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.ctx.nav, self.SECTION)
        yield from self.compose_body()
        yield StatusBar()
        yield KeysFooter()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """A toast whose text is shown as it is: a notification names jobs, models and aliases,
        so it is never parsed as markup (Textual's default) and its control characters are escaped."""
        super().notify(
            visible(message, keep="\n"),
            title=visible(title),
            severity=severity,
            timeout=timeout,
            markup=markup,
        )

    def commands(self) -> Iterable[SystemCommand]:
        """This screen's entries in the command palette (ctrl+p)."""
        return ()

    # -- reading the services --------------------------------------------------------------

    def ask(self, question: str) -> int:
        """Number a new ``question`` for a worker to answer; answers to the earlier ones are stale."""
        self._asked[question] = self._asked.get(question, 0) + 1
        return self._asked[question]

    def stale(self, question: str, seq: int) -> bool:
        """True for an answer to ``question`` that was asked again since: drop it."""
        return seq != self._asked.get(question, 0)

    def reload(self) -> None:
        """Re-read what the screen shows (a polling screen starts its read here)."""

    def read_first(self) -> None:
        """The first read (`reload`, from ``on_mount``): now, or for a screen built ahead, when it
        first shows, so it shows what is there then, and a section never visited reads nothing
        (Monitoring's evaluates every served alias's drift)."""
        if self.ahead and not self.is_current:
            self._unread = True
        else:
            self.reload()

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        """(Textual calls each class's own handler: `KeptStyles`' too.)"""
        if self._unread:
            self._unread = False
            self.reload()

    def poll(self) -> None:
        """The periodic re-read; skipped while one is under way or a dialog is open."""
        if not self.reading and self.app.screen is self:
            self.reload()

    def on_service_failed(self, message: ServiceFailed) -> None:
        """A refused read ends the reading (the app shows why), so the periodic re-read goes on."""
        self.reading = False

    def fail(self, error: MlboxError) -> None:
        """Report a refused service call; safe from a worker thread (messages are thread-safe)."""
        self.post_message(ServiceFailed(error))
