"""What the TUI needs from an embedded appliance, as a protocol.

The CLI builds the real `mlbox.appliance.Appliance` and hands it in; the TUI
never imports it (import-linter forbids ``mlbox.tui`` → ``mlbox.appliance``),
so it depends only on these members (the serving service is a service, which
``mlbox.tui`` may import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mlbox.serving.service import ServingService  # numpy: not for the TUI's start


class ApplianceHandle(Protocol):
    url: str | None

    @property
    def serving(self) -> ServingService | None:
        """The service scoring the served models (the Serving screen reads its statistics)."""

    def start_loops(self) -> None:
        """Start the background loops (crash reaper, later the scheduler)."""

    def start_http(self) -> str:
        """Serve the HTTP API; returns its URL once it accepts connections."""
        ...

    def stop(self) -> None:
        """Stop loops and HTTP and wait for them; safe to call twice."""
