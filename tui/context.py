"""What every screen reads from the app: the services and the timing knobs.

Screens reach it through `TuiContext.of(self.app)`, so a screen needs no
import of the app module (which imports the screens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.app import App

from mlbox.tui.widgets.nav_bar import NavEntry

if TYPE_CHECKING:
    from mlbox.services import Services  # numpy and every service: the TUI's start needs none


@dataclass(frozen=True)
class TuiContext:
    services: Services
    nav: tuple[NavEntry, ...] = ()
    """The working service screens, in navigation order."""
    refresh_s: float = 2.0
    """How often the runs table re-queries the store (cheap: the loaded rows only)."""
    live_s: float = 1.0
    """How often a running run's curves are re-read."""
    page_size: int = 100
    """Runs fetched per page; the next page is fetched as the cursor nears the end."""
    max_points: int = 500
    """Points per plotted curve; longer series are thinned evenly by the service."""
    build_ahead: bool = True
    """Build each section's screen while the user is idle (`MlboxApp.build_ahead`)."""

    @staticmethod
    def of(app: App[Any]) -> TuiContext:
        ctx = getattr(app, "ctx", None)
        if not isinstance(ctx, TuiContext):
            raise RuntimeError("mlbox screens run inside MlboxApp only")
        return ctx
