"""``GET /api/v1/health``: the one management-free route (besides the schema).

Open to any caller on an accepted host, so a supervisor or the TUI can tell
the appliance is up without holding the token; it says nothing about the data.
"""

from __future__ import annotations

from litestar import Controller, get

from mlbox import __version__
from mlbox.api.schemas import Health


class HealthController(Controller):
    path = "/api/v1/health"
    tags = ("health",)

    @get(operation_id="health", sync_to_thread=False, summary="Is the appliance up?")
    def health(self) -> Health:
        return Health(status="ok", version=__version__)
