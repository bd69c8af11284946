"""What every mlbox screen shares: the header, navigation, status bar and footer.

A screen composes its body only; the frame around it is the same everywhere,
and so is the way a worker reports a refused service call (`fail`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult, SystemCommand
from textual.screen import Screen
from textual.widgets import Footer, Header

from mlbox.store.errors import MlboxError
from mlbox.tracking.service import TrackingService
from mlbox.tui.context import TuiContext
from mlbox.tui.messages import ServiceFailed
from mlbox.tui.widgets.nav_bar import NavBar
from mlbox.tui.widgets.status_bar import StatusBar


class MlboxScreen(Screen[None]):
    SECTION: ClassVar[str] = ""
    """The navigation entry lit while this screen shows (its service's mode)."""

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
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def commands(self) -> Iterable[SystemCommand]:
        """This screen's entries in the command palette (ctrl+p)."""
        return ()

    def fail(self, error: MlboxError) -> None:
        """Report a refused service call; safe from a worker thread (messages are thread-safe)."""
        self.post_message(ServiceFailed(error))
