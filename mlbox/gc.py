"""``mlbox gc``: purge what was deleted longer ago than the retention period, then remove the
artifact objects nothing references any more and the model cache's folders of deleted
versions, reporting the space freed.

Safe beside a running appliance: the purge goes in small transactions and keeps running
runs, and the sweep (`mlbox.store.gc`) never removes an object a writer stored after it
started or is about to reference. Every service that stores objects in the artifact store
answers ``referenced_objects()`` and is asked here; a service that stores objects and is
missing from `_references` would see them removed, so a new one is added there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from mlbox.store.gc import MIN_OBJECT_AGE_S, sweep

if TYPE_CHECKING:
    from mlbox.services import Services

DAY_S = 86_400.0


class GcReport(msgspec.Struct, frozen=True):
    dry_run: bool
    older_than_s: float
    purged_runs: list[int]
    purged_experiments: list[int]
    kept: list[str]
    """Deleted runs past the retention period that stay, and why."""
    objects_removed: int
    freed_bytes: int
    objects_kept_young: int
    """Unreferenced objects younger than the minimum age (a writer may not have recorded them yet)."""
    objects_referenced: int
    cache_folders_removed: int
    """Verified model folders of deleted versions (`mlbox.registry.cache`)."""
    cache_bytes_freed: int


def _references(services: Services, purged_runs: list[int]) -> Callable[[], set[str]]:
    def referenced() -> set[str]:
        names = services.tracking.referenced_objects(purged_runs)
        names |= services.registry.referenced_objects()
        names |= services.pipelines.referenced_objects()
        return names

    return referenced


def collect(
    services: Services,
    *,
    older_than_s: float,
    dry_run: bool = False,
    now: float | None = None,
    min_object_age_s: float = MIN_OBJECT_AGE_S,
) -> GcReport:
    """Purge runs and experiments deleted ``older_than_s`` before ``now``, then sweep the objects.
    ``now`` moves the retention clock only: the sweep's own start is always the real time."""
    started = time.time()
    purged = services.tracking.purge_deleted(older_than_s=older_than_s, now=now, dry_run=dry_run)
    swept = sweep(
        services.tracking.artifacts,
        _references(services, purged.runs if dry_run else []),
        min_age_s=min_object_age_s,
        dry_run=dry_run,
        started=started,
    )
    folders, cache_bytes = services.registry.prune_cache(dry_run=dry_run)
    return GcReport(
        dry_run=dry_run,
        older_than_s=older_than_s,
        purged_runs=purged.runs,
        purged_experiments=purged.experiments,
        kept=purged.kept,
        objects_removed=swept.removed,
        freed_bytes=swept.freed_bytes,
        objects_kept_young=swept.kept_young,
        objects_referenced=swept.referenced,
        cache_folders_removed=folders,
        cache_bytes_freed=cache_bytes,
    )
