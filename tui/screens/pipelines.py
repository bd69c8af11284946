"""The Pipelines screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from mlbox.tui.screens.base import MlboxScreen


class PipelinesScreen(MlboxScreen):
    SECTION = "pipelines"
    TITLE = "Pipelines"

    def compose_body(self) -> ComposeResult:
        yield Static("Pipelines: the DAG with live step states, cache hits, retries")
