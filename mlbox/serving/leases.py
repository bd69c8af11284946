"""Serving's GPUs come from the scheduler's lease table, like jobs' and notebooks' (one board)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

from mlbox.store.errors import Conflict


class Gpu(Protocol):
    @property
    def index(self) -> int: ...

    @property
    def simulated(self) -> bool: ...


class LeaseTable(Protocol):
    """What serving uses of `mlbox.scheduler.service.SchedulerService`."""

    def lease_gpus(self, holder: str, count: int) -> list[int]: ...

    def release_gpus(self, holder: str) -> None: ...

    def inventory(self) -> Sequence[Gpu]: ...


class LeasedGpus:
    """A `mlbox.serving.deployment.GpuPlacer` over the scheduler's lease table."""

    def __init__(self, leases: LeaseTable) -> None:
        self.leases = leases

    def take(self, holder: str) -> str | None:
        # CUDA's numbering then matches NVML's, which the inventory (and so the lease) uses
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        try:
            (index,) = self.leases.lease_gpus(holder, 1)
        except Conflict:
            return None
        gpu = next(g for g in self.leases.inventory() if g.index == index)
        return "cpu" if gpu.simulated else f"cuda:{index}"

    def give_back(self, holder: str) -> None:
        self.leases.release_gpus(holder)
