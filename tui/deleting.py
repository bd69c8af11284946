"""Deleting from the TUI: the same confirmation everywhere, the service call off the UI thread.

A screen names what goes (``run 12 (lr-0.1)``) and the call that deletes it; the user
confirms in `ConfirmDialog` (``y``/Enter, Escape cancels), the call runs in a thread
worker, and the screen hears `Deleted` (a toast, then it re-reads). A refusal, such as
a `Conflict` naming the model version that still needs a run, ends in the app's one
error dialog (`MlboxScreen.fail`), and nothing was deleted.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.message import Message

from mlbox.store.errors import MlboxError
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog


class Deleted(Message):
    """A deletion (or restore) went through; ``text`` says what, for the toast."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


def confirm_then(screen: MlboxScreen, title: str, change: str, detail: str, act: Callable[[], str]) -> None:
    """Ask, then run ``act`` (returning the toast's text) in a worker when the user confirms."""

    def answered(confirmed: bool | None) -> None:
        if confirmed:
            run_off_thread(screen, act)

    screen.app.push_screen(ConfirmDialog(title, change, detail, confirm_label=title.split()[0]), answered)


def run_off_thread(screen: MlboxScreen, act: Callable[[], str]) -> None:
    """Run ``act`` in a thread worker; `Deleted` when it went through, the error dialog when refused."""

    def work() -> None:
        try:
            text = act()
        except MlboxError as exc:
            screen.fail(exc)
            return
        screen.post_message(Deleted(text))

    screen.run_worker(work, thread=True, group="delete", exit_on_error=False)


def restorable(retention_days: float, how: str) -> str:
    """The dialog's second line for a restorable deletion."""
    return f"restorable for {retention_days:g} days: {how}\nafter that, mlbox gc purges it"
