"""What an upstream-data trigger follows: a logged dataset's content hash, a training set's.

A schedule of kind ``dataset`` reads ``experiment/name``: the newest run of the experiment
that logged a dataset ``name`` gives its digest (the content hash the tracking client
computed). A schedule of kind ``training_set`` reads a training-set name: the newest record
of that name in the feature store gives a hash of what it was built from (pinned views,
their definitions' hashes and the entity frame's hash), so rebuilding the same set does not
start a run and a changed view or entity frame does. Each function answers ``(state,
value)``: the state the schedule remembers ('' while there is nothing to follow) and the
value the run's ``dataset`` / ``training_set`` parameter gets.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from mlbox.store.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from mlbox.features.service import FeatureStore
    from mlbox.tracking.service import TrackingService

RUNS_LOOKED_AT = 50
"""The newest runs of the experiment searched for the dataset."""


def split_dataset_spec(spec: str) -> tuple[str, str]:
    experiment, sep, name = spec.rpartition("/")
    if not sep or not experiment or not name:
        raise InvalidInput(f"a dataset to follow reads experiment/name, not {spec!r}", field="spec")
    return experiment, name


def dataset_state(tracking: TrackingService, spec: str) -> tuple[str, str]:
    """``(digest, digest)`` of the newest logged dataset ``spec`` names; ``('', '')`` if none."""
    experiment, name = split_dataset_spec(spec)
    try:
        page = tracking.search_runs(experiments=[experiment], limit=RUNS_LOOKED_AT)
    except NotFound:
        return "", ""
    for run in page.runs:
        for d in tracking.list_datasets(run.id):
            if d.name == name:
                return d.digest, d.digest
    return "", ""


def training_set_state(features: FeatureStore, name: str) -> tuple[str, str]:
    """``(content hash, id)`` of the newest training set called ``name``; ``('', '')`` if none."""
    if not name:
        raise InvalidInput("a training set to follow needs its name", field="spec")
    for ts in features.training_sets(limit=200):
        if ts.name == name:
            h = hashlib.sha256(ts.entity_hash.encode())
            for f in ts.features:
                h.update(b"\0f" + f.encode())
            for v in ts.views:
                h.update(f"\0v{v.name}@{v.version}:{v.hash}".encode())
            return h.hexdigest(), str(ts.id)
    return "", ""
