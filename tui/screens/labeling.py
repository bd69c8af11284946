"""The Labeling screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from mlbox.tui.screens.base import MlboxScreen


class LabelingScreen(MlboxScreen):
    SECTION = "labeling"
    TITLE = "Labeling"

    def compose_body(self) -> ComposeResult:
        yield Static("Labeling projects, the labeling screen, agreement")
