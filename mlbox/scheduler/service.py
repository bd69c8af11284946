"""The scheduler service: the jobs table, GPU leases and the reconciliation pass."""

from __future__ import annotations

from mlbox.scheduler.config import SchedulerSettings
from mlbox.store import Database, Home
from mlbox.tracking.service import TrackingService


class SchedulerService:
    def __init__(
        self, db: Database, home: Home, tracking: TrackingService, settings: SchedulerSettings
    ) -> None:
        self.db = db
        self.home = home
        self.tracking = tracking
        self.settings = settings

    def reconcile_once(self) -> dict[str, list[int]]:
        """One pass over the jobs table (the appliance's scheduler loop calls it every tick)."""
        return {}
