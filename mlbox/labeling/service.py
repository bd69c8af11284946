"""The labeling service: the one object front ends call."""

from __future__ import annotations

from mlbox.labeling.config import LabelingSettings
from mlbox.labeling.migrations import migrations
from mlbox.store import Database, Home


class LabelingService:
    def __init__(self, db: Database, home: Home, settings: LabelingSettings | None = None) -> None:
        self.db = db
        self.home = home
        self.settings = settings or LabelingSettings()
        migrations.apply(db)

    def reconcile_once(self, now: float | None = None) -> dict[str, list[int]]:
        """One pass of the service's background work."""
        return {}

    def list(self) -> list[str]:
        return []
