"""The monitoring service: the one object front ends call."""

from __future__ import annotations

from mlbox.monitoring.config import MonitoringSettings
from mlbox.monitoring.migrations import migrations
from mlbox.store import Database, Home


class MonitoringService:
    def __init__(self, db: Database, home: Home, settings: MonitoringSettings | None = None) -> None:
        self.db = db
        self.home = home
        self.settings = settings or MonitoringSettings()
        migrations.apply(db)

    def reconcile_once(self, now: float | None = None) -> dict[str, list[int]]:
        """One pass of the service's background work."""
        return {}

    def list(self) -> list[str]:
        return []
