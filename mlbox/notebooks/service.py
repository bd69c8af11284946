"""The notebook service: JupyterLab servers as jobs, culled when idle; headless notebook runs."""

from __future__ import annotations

from mlbox.scheduler.service import SchedulerService
from mlbox.store import Database, Home


class NotebookService:
    def __init__(self, db: Database, home: Home, scheduler: SchedulerService) -> None:
        self.db = db
        self.home = home
        self.scheduler = scheduler

    def reconcile_once(self) -> dict[str, list[int]]:
        """One pass: cull servers idle past their limit (no browser, no busy kernel, no GPU work)."""
        return {}
