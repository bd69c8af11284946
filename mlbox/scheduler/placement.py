"""Placement: which waiting jobs start on which GPUs, and which running jobs to preempt.

A pure function over values with the clock passed in, so its invariants are
tested on their own (tests/test_scheduler_placement.py):

* no GPU is ever given to two jobs: a start only takes GPUs that are free now
  and not reserved for a job ahead of it;
* order is priority, then age (``created_at``; a preempted job keeps its age);
* backfill: a job that cannot fit does not block smaller ones behind it;
* no starvation: the first job (in order) blocked for ``starve_after_s`` gets
  the free GPUs it fits on reserved, tick after tick, so they accumulate
  until it fits instead of being taken by smaller jobs behind it;
* preemption: a blocked job may stop ``preemptible`` running jobs of strictly
  lower priority (lowest priority first, then the youngest), only when that
  frees enough GPUs; until they are gone the GPUs it will take are reserved
  for it, so nothing else slips onto them and nothing is preempted twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from mlbox.scheduler.schemas import Gpu


class Waiting(NamedTuple):
    """A queued (or preempted) job; a named tuple, as 10,000 of them are built every pass."""

    id: int
    priority: int
    created_at: float
    queued_at: float
    gpus: int
    gpu_memory_mb: int = 0
    cpus: float = 0.0


class Holding(NamedTuple):
    """A running job: the GPUs and CPU cores it holds until its process is gone."""

    id: int
    priority: int
    gpus: tuple[int, ...]
    cpus: float = 0.0
    preemptible: bool = False
    started_at: float = 0.0
    stopping: bool = False
    """Being stopped (cancel, timeout, preemption): its GPUs free up soon."""


@dataclass(frozen=True)
class Placement:
    starts: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)
    preempt: list[int] = field(default_factory=list)
    reserved: dict[int, tuple[int, ...]] = field(default_factory=dict)
    """Job id -> GPUs kept for it this tick (starving, or waiting on preempted/stopping jobs)."""
    impossible: list[int] = field(default_factory=list)
    """Jobs that can never fit this inventory (too many GPUs, too much memory, too many cores)."""


def order_key(w: Waiting) -> tuple[int, float, int]:
    return (-w.priority, w.created_at, w.id)


def place(
    waiting: Sequence[Waiting],
    running: Sequence[Holding],
    gpus: Sequence[Gpu],
    *,
    now: float,
    cpus_total: float | None = None,
    starve_after_s: float = float("inf"),
) -> Placement:
    memory = {g.index: g.memory_mb for g in gpus}
    held = {i for r in running for i in r.gpus}
    free = [g.index for g in sorted(gpus, key=lambda g: g.index) if g.index not in held]
    soon = [i for r in running if r.stopping for i in r.gpus if i in memory]
    cpu_left = None if cpus_total is None else cpus_total - sum(r.cpus for r in running)
    candidates = sorted(
        (r for r in running if r.preemptible and not r.stopping), key=lambda r: (r.priority, -r.started_at)
    )
    lowest_victim = candidates[0].priority if candidates else None
    reserved: set[int] = set()
    victims: set[int] = set()
    out = Placement()
    starving_served = False
    fit_counts: dict[int, int] = {}

    def fits(index: int, need_mb: int) -> bool:
        mb = memory.get(index)
        return need_mb <= 0 or mb is None or mb >= need_mb

    for w in sorted(waiting, key=order_key):
        stuck_can_move = lowest_victim is not None and lowest_victim < w.priority
        need = w.gpus
        if need > 0:
            total = fit_counts.get(w.gpu_memory_mb)
            if total is None:
                total = fit_counts[w.gpu_memory_mb] = sum(1 for i in memory if fits(i, w.gpu_memory_mb))
            if need > total:
                out.impossible.append(w.id)
                continue
        if cpus_total is not None and w.cpus > cpus_total + 1e-9:
            out.impossible.append(w.id)
            continue
        idle = need > 0 and not free and not soon and not stuck_can_move
        if idle and (starving_served or now - w.queued_at < starve_after_s):
            continue  # nothing free, nothing freeing up, nobody to preempt: it waits (the common case)
        cpu_ok = cpu_left is None or w.cpus <= cpu_left + 1e-9
        if need == 0:
            if cpu_ok:
                out.starts.append((w.id, ()))
                if cpu_left is not None:
                    cpu_left -= w.cpus
            continue
        avail = [i for i in free if i not in reserved and fits(i, w.gpu_memory_mb)] if free else []
        if len(avail) >= need and cpu_ok:
            pick = tuple(avail[:need])
            out.starts.append((w.id, pick))
            taken = set(pick)
            free = [i for i in free if i not in taken]
            if cpu_left is not None:
                cpu_left -= w.cpus
            continue
        # Blocked on GPUs (or cores): GPUs about to free up, then preemption, then starvation.
        coming = [i for i in soon if i not in reserved and fits(i, w.gpu_memory_mb)]
        have = avail + coming
        chosen: list[Holding] = []
        if len(have) < need and lowest_victim is not None and lowest_victim < w.priority:
            extra: list[int] = []
            for c in candidates:
                if c.priority >= w.priority:
                    break
                if c.id in victims:
                    continue
                theirs = [i for i in c.gpus if i not in reserved and fits(i, w.gpu_memory_mb)]
                if not theirs:
                    continue
                chosen.append(c)
                extra += theirs
                if len(have) + len(extra) >= need:
                    break
            if len(have) + len(extra) >= need:
                for c in chosen:
                    victims.add(c.id)
                    out.preempt.append(c.id)
                have += extra
            else:
                chosen = []
        if len(have) >= need and (coming or chosen):
            hold = tuple(have[:need])
            reserved.update(hold)
            out.reserved[w.id] = hold
            continue
        if not starving_served and now - w.queued_at >= starve_after_s:
            starving_served = True
            hold = tuple(avail[:need])
            reserved.update(hold)
            out.reserved[w.id] = hold
    return out
