"""The pipelines service: the one object front ends call."""

from __future__ import annotations

from mlbox.pipelines.config import PipelineSettings
from mlbox.pipelines.migrations import migrations
from mlbox.store import Database, Home


class PipelineService:
    def __init__(self, db: Database, home: Home, settings: PipelineSettings | None = None) -> None:
        self.db = db
        self.home = home
        self.settings = settings or PipelineSettings()
        migrations.apply(db)

    def reconcile_once(self, now: float | None = None) -> dict[str, list[int]]:
        """One pass of the service's background work."""
        return {}

    def list(self) -> list[str]:
        return []
