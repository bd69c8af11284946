"""Removing artifact objects that nothing references any more, beside live writers.

Writers store an object first and record their reference to it afterwards (in their
own transaction), so at any moment an object may be unreferenced only because its
writer has not committed yet. The sweep never removes such an object:

1. the objects are listed first, and only those stored (or touched: storing bytes that
   are already there touches the object) before ``started - min_age_s`` are candidates;
   an object written or re-stored after the sweep started is never one;
2. the references are read after the listing, so a reference committed before that is seen;
3. a candidate is renamed aside before it is removed and put back when a writer touched
   it meanwhile (`ArtifactStore.discard`): a writer racing the sweep either touched it
   (kept) or found it gone and wrote it afresh.

What is left is a writer that stored a brand-new object more than ``min_age_s`` before
the sweep and still has not recorded it; the default age (an hour) is far beyond any
put-to-commit gap (a folder upload records its files once all are stored).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from mlbox.store.artifacts import ArtifactStore

MIN_OBJECT_AGE_S = 3600.0
"""Objects younger than this are never removed (see the module docstring)."""


class Swept(msgspec.Struct, frozen=True):
    removed: int
    """Objects removed (with ``dry_run``: that would be)."""
    freed_bytes: int
    kept_young: int
    """Unreferenced objects left because they are younger than the minimum age."""
    referenced: int
    """Objects something references."""


def sweep(
    store: ArtifactStore,
    referenced: Callable[[], set[str]],
    *,
    min_age_s: float = MIN_OBJECT_AGE_S,
    dry_run: bool = False,
    started: float | None = None,
) -> Swept:
    """Remove the objects ``referenced()`` does not name and no writer stored lately."""
    cutoff = (time.time() if started is None else started) - min_age_s
    listed = list(store.objects())
    names = referenced()
    removed = freed = young = held = 0
    for sha, size, mtime in listed:
        if sha in names:
            held += 1
        elif mtime >= cutoff:
            young += 1
        elif dry_run or store.discard(sha, touched_since=cutoff):
            removed, freed = removed + 1, freed + size
        else:
            young += 1  # a writer stored it again meanwhile
    return Swept(removed=removed, freed_bytes=freed, kept_young=young, referenced=held)
