"""The monitoring service over HTTP (every route needs the token)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from mlbox.monitoring.service import MonitoringService


class MonitoringController(Controller):
    path = "/api/v1/monitors"
    tags = ("monitoring",)

    @get(operation_id="listMonitors", sync_to_thread=True, summary="All of them")
    def list_all(self, monitoring: NamedDependency[MonitoringService]) -> list[str]:
        return monitoring.list()
