"""The Monitor screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from mlbox.tui.screens.base import MlboxScreen


class MonitorScreen(MlboxScreen):
    SECTION = "monitor"
    TITLE = "Monitor"

    def compose_body(self) -> ComposeResult:
        yield Static("Drift per feature, performance over time, alerts, explanations")
