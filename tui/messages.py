"""Messages that workers post back to the UI thread.

Workers run service calls in threads and never touch widgets; they answer
with a message. `ServiceFailed` bubbles from any screen to the app, which
shows the one error dialog.
"""

from __future__ import annotations

from textual.message import Message

from mlbox.store.errors import MlboxError


class ServiceFailed(Message):
    """A service call refused (bad id, conflict, bad input): the app shows it in the error dialog."""

    def __init__(self, error: MlboxError) -> None:
        super().__init__()
        self.error = error
