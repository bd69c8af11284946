"""Dialogs built once and shown again (issue 18: every key within 100 ms over a big home).

Pushing a new dialog composes, registers and styles its widgets and lays them
out: 80-100 ms of CPU for the sort picker or the column chooser over a home of
20-metric runs, where showing a built one again is a repaint. A `KeptDialog`
is installed under a name the first time it is shown and pushed again the next
times, after its class has turned it to the new question (its options, what is
chosen now). Textual restyles every widget of a screen it pushes; a kept dialog
skips that unless the app's CSS changed since it was last styled (a theme).

A dialog a screen stack still holds (shown in another mode, under another
dialog) is not taken: `kept` answers None and the caller builds a new one.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from textual import events
from textual._context import active_app
from textual.app import App
from textual.await_complete import AwaitComplete
from textual.screen import ModalScreen, ScreenResultCallbackType

Result = TypeVar("Result")
Dialog = TypeVar("Dialog", bound="KeptDialog[Any]")


class KeptDialog(ModalScreen[Result], Generic[Result]):
    def __init__(self) -> None:
        super().__init__()
        self.stacked = False
        """Pushed by `show` and not dismissed since: another `show` must not push it again."""
        # styled by the current stylesheet as it mounts: no restyle on its first push
        self._css_update_count = getattr(active_app.get(None), "_css_update_count", -1)

    @classmethod
    def kept(cls: type[Dialog], app: App[Any], name: str) -> Dialog | None:
        """The dialog installed under ``name`` (of this class), unless a screen stack holds it."""
        if not app.is_screen_installed(name):
            return None
        dialog = app.get_screen(name)
        return dialog if isinstance(dialog, cls) and not dialog.stacked else None

    def show(
        self, app: App[Any], name: str, callback: ScreenResultCallbackType[Result] | None = None
    ) -> None:
        """Push this dialog, installed under ``name`` unless another one is (kept for next time)."""
        if not app.is_screen_installed(name):
            app.install_screen(self, name)
        self.stacked = True
        app.push_screen(self, callback)

    def dismiss(self, result: Result | None = None) -> AwaitComplete:
        self.stacked = False
        return super().dismiss(result)

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        """Shown (again): Textual's restyle of every widget only when the CSS changed meanwhile."""
        if self._css_update_count == self.app._css_update_count:
            event.refresh_styles = False
        self._css_update_count = self.app._css_update_count
