"""Value objects of the feature store, shared by the client, API, CLI and TUI.

Times are UTC epoch seconds (floats) like the rest of mlbox's schemas, so they
cross JSON unchanged; `None` means "never"/"unknown".
"""

from __future__ import annotations

import msgspec


class FieldInfo(msgspec.Struct, frozen=True):
    name: str
    dtype: str
    description: str = ""


class EntityInfo(msgspec.Struct, frozen=True):
    name: str
    join_keys: list[str]
    description: str
    created_at: float
    updated_at: float


class Freshness(msgspec.Struct, frozen=True):
    """How current a view's online values are.

    ``materialized_end``: the end of the newest materialization window (the
    start of the next incremental one); ``newest_event_ts``: the newest event
    time among materialized rows; ``rows``: rows in the online table now.
    """

    view: str
    version: int
    materialized_end: float | None
    newest_event_ts: float | None
    last_run_at: float | None
    rows: int


class ViewVersionInfo(msgspec.Struct, frozen=True):
    version: int
    hash: str
    created_at: float


class ViewInfo(msgspec.Struct, frozen=True):
    """A view as registered: its latest version, plus the list of all versions.

    ``kind`` is ``feature_view`` or ``on_demand_feature_view``; ``source`` a short
    human description (``parquet: /data/x.parquet``); ``sources`` the source
    views of an on-demand view and ``request`` the values its lookups must send.
    """

    name: str
    kind: str
    version: int
    hash: str
    versions: list[ViewVersionInfo]
    entities: list[str]
    join_keys: list[str]
    features: list[FieldInfo]
    ttl_s: float | None
    source: str
    timestamp_field: str | None
    created_timestamp_field: str | None
    sources: list[str]
    description: str
    created_at: float
    freshness: Freshness | None = None
    request: list[FieldInfo] = []


class ApplyChange(msgspec.Struct, frozen=True):
    """One definition's fate in `apply`: ``created``, ``updated`` (a new version),
    ``unchanged``, or ``restored`` (a deleted view made live again: at the same
    version when its definition is the same, else at a new one)."""

    kind: str
    name: str
    action: str
    version: int | None = None
    hash: str | None = None


class ApplyResult(msgspec.Struct, frozen=True):
    changes: list[ApplyChange]

    @property
    def changed(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)


class TrainingSetView(msgspec.Struct, frozen=True):
    name: str
    version: int
    hash: str


class TrainingSetInfo(msgspec.Struct, frozen=True):
    """The lineage of one `get_historical_features` call.

    ``features`` are the pinned references (``view:feature@vN``): passing them
    with the same entity frame (``entity_hash``) reproduces the frame.
    """

    id: int
    created_at: float
    features: list[str]
    views: list[TrainingSetView]
    entity_hash: str
    entity_rows: int
    row_count: int
    columns: list[str]
    full_feature_names: bool
    timestamp_field: str
    run_id: int | None = None
    name: str | None = None


class MaterializeResult(msgspec.Struct, frozen=True):
    """One view's materialization: rows written (upserts attempted) over windows."""

    view: str
    version: int
    start: float
    end: float
    rows: int
    chunks: int
    seconds: float


class MaterializeProgress(msgspec.Struct, frozen=True):
    """Reported to a progress callback after each chunk of a backfill."""

    view: str
    version: int
    chunk: int
    chunks: int
    chunk_start: float
    chunk_end: float
    rows: int


class DeleteResult(msgspec.Struct, frozen=True):
    """What `FeatureStore.delete_view` / `delete_entity` did (or, dry run, would do).

    A view's versions are kept (``versions``), so training sets built from it
    keep their lineage and applying its definition again restores it;
    ``online_rows`` materialized values were removed with it.
    """

    kind: str
    name: str
    versions: list[int] = []
    online_rows: int = 0
    deleted_at: float | None = None
    dry_run: bool = False
