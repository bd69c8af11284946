"""The sweep service: studies whose trials run as jobs, driven by a reconciliation pass."""

from __future__ import annotations

from mlbox.scheduler.service import SchedulerService
from mlbox.store import Database, Home
from mlbox.tracking.service import TrackingService


class SweepService:
    def __init__(
        self, db: Database, home: Home, tracking: TrackingService, scheduler: SchedulerService
    ) -> None:
        self.db = db
        self.home = home
        self.tracking = tracking
        self.scheduler = scheduler

    def reconcile_once(self) -> dict[str, list[int]]:
        """One pass: ask for trials where GPUs are free, tell finished ones, stop pruned ones."""
        return {}
