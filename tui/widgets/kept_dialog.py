"""Dialogs built once and shown again (issue 18: every key within 100 ms over a big home).

Pushing a new dialog composes, registers and styles its widgets and lays them
out: 80-100 ms of CPU for the sort picker or the column chooser over a home of
20-metric runs, where showing a built one again is a repaint. A `KeptDialog`
is installed under a name the first time it is shown and pushed again the next
times, after its class has turned it to the new question (its options, what is
chosen now). Textual's restyle of every widget of a screen it pushes is skipped
unless the app's CSS changed since (`KeptStyles`).

A dialog a screen stack still holds (shown in another mode, under another
dialog) is not taken: `kept` answers None and the caller builds a new one.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from textual.app import App
from textual.await_complete import AwaitComplete
from textual.screen import ModalScreen, ScreenResultCallbackType

from mlbox.tui.widgets.kept_styles import KeptStyles

Result = TypeVar("Result")
Dialog = TypeVar("Dialog", bound="KeptDialog[Any]")


class KeptDialog(KeptStyles, ModalScreen[Result], Generic[Result]):
    def __init__(self) -> None:
        super().__init__()
        self.stacked = False
        """Pushed by `show` and not dismissed since: another `show` must not push it again."""

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
