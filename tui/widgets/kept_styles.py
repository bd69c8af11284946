"""Screens shown again without Textual's restyle of every widget (issue 18: keys within 100 ms).

Textual restyles all the widgets of a screen it shows again (a mode switch, a
screen popped off it, a kept dialog pushed again): 20-40 ms of a key press over
a big home. A widget's styles only change meanwhile if the app's CSS did (a
theme counts the app's ``_css_update_count`` up); focus and hover restyle their
widgets as they happen. `KeptStyles` skips the restyle unless the count moved
since the screen was last styled; a new screen is styled as it mounts, by the
stylesheet of then, so it starts at the app's count.
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual._context import active_app


class KeptStyles:
    """Mixed into a `textual.screen.Screen` subclass, before it."""

    _css_update_count: int
    app: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._css_update_count = getattr(active_app.get(None), "_css_update_count", -1)

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        if self._css_update_count == self.app._css_update_count:
            event.refresh_styles = False
        self._css_update_count = self.app._css_update_count
