"""The feature store service over one ``$MLBOX_HOME``: the API front ends call.

It composes three parts, each owning one invariant:

* `catalog.Catalog` (tables in ``mlbox.db``): versioned definitions. A view's
  version is the hash of its canonical definition; versions are immutable, so
  a training set names exactly what it was built from.
* `retrieval` + `pointintime`: point-in-time correct training sets, streamed
  over the sources in batches (a numpy bucket join; memory grows with the
  entity rows, not the source), each saved as a training-set record
  (`trainingsets`, tables in ``mlbox.db``: what the frame was built from).
* `online.OnlineStore` (``features/online.db``): the latest value per entity,
  written by materialization with upserts that only move forward in time.

Deleting a view spans both files. The online store's write lock is taken
first (waiting out a materialization there holds no lock on ``mlbox.db``,
which every run's metrics go through); inside it the catalog checks and marks
the view deleted and commits, then the online tables are dropped and that
commits. Refused by the catalog: nothing changes. A crash between the two
commits leaves a deleted view's rows behind, never served (references to a
deleted view fail before any read) and dropped by the next delete attempt.

Heavy libraries (polars, duckdb) load inside the methods that need them, so
``Services.open`` stays cheap for the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlbox.features import sources as src
from mlbox.features import trainingsets
from mlbox.features.catalog import Catalog
from mlbox.features.config import DEFAULT_MEMORY_LIMIT, check_memory_limit
from mlbox.features.definitions import Definition, View
from mlbox.features.deletion import ModelFeatures
from mlbox.features.online import OnlineStore
from mlbox.features.schemas import (
    ApplyResult,
    DeleteResult,
    EntityInfo,
    Freshness,
    MaterializeProgress,
    MaterializeResult,
    TrainingSetInfo,
    ViewInfo,
)
from mlbox.store import Database, Home, private
from mlbox.store.errors import NotFound

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from mlbox.features.refs import FeaturePlan
    from mlbox.features.retrieval import RetrievalJob

__all__ = ["DEFAULT_MEMORY_LIMIT", "FeatureStore"]


class FeatureStore:
    """Definitions, training sets and online features of one mlbox home.

    ``memory_limit`` (a DuckDB size like ``'2GB'``) bounds the offline join (its
    batch size, and DuckDB's reading, which spills to ``$MLBOX_HOME/features/tmp``). ``model_features``
    lists the registered model versions that take feature views as inputs
    (`deletion.ModelFeatures`): a view one of them names is not deleted.
    """

    def __init__(
        self,
        db: Database,
        home: Home,
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
        model_features: ModelFeatures | None = None,
    ) -> None:
        self.db = db
        self.model_features = model_features
        self.home = home
        self.root = home.root / "features"
        self.memory_limit = check_memory_limit(memory_limit or DEFAULT_MEMORY_LIMIT)
        self.threads = threads
        self.catalog = Catalog(db, frames_dir=self.root / "frames")
        self.online = OnlineStore(self.root / "online.db")

    # -- definitions ---------------------------------------------------------------------

    def apply(self, definitions: Iterable[Definition] | str | Path, *, dry_run: bool = False) -> ApplyResult:
        """Register entities and views (objects, or a YAML file path).

        Every view is validated against its source (join keys, timestamp columns,
        declared dtypes) before anything is written; then all changes commit in one
        transaction. A view whose canonical definition changed gets a new version;
        older versions stay resolvable (``view:feature@v1``). ``dry_run`` validates
        and reports what would change without writing.
        """
        if isinstance(definitions, (str, Path)):
            from mlbox.features.loader import load_definitions

            defs: list[Definition] = load_definitions(definitions)
        else:
            defs = list(definitions)
        return self.catalog.apply(defs, dry_run=dry_run)

    def list_entities(self) -> list[EntityInfo]:
        return self.catalog.list_entities()

    def delete_view(self, name: str, *, dry_run: bool = False) -> DeleteResult:
        """Delete a view: it stops listing, every reference to it fails with NotFound
        saying it was deleted, and its online values are removed. Its versions stay,
        so training sets built from it keep their lineage; applying its definition
        again restores it (same definition: same version, changed: the next one).

        Conflict, naming them, while a live on-demand view reads it or a registered
        model version takes its features. ``dry_run`` checks and reports, writing nothing.
        """
        if dry_run:
            versions, _ = self.catalog.delete_view(name, model_features=self.model_features, dry_run=True)
            return DeleteResult(
                "feature_view", name, versions, self.online.drop_view(name, dry_run=True), dry_run=True
            )
        with self.online.write_lock():
            try:
                versions, at = self.catalog.delete_view(name, model_features=self.model_features)
            except NotFound as exc:
                if not self.catalog.is_deleted(name):
                    raise
                gone = exc  # already deleted: leave the lock, then drop what a crash may have left
            else:
                return DeleteResult("feature_view", name, versions, self.online.drop_view(name), at)
        self.online.drop_view(name)
        raise gone

    def delete_entity(self, name: str, *, dry_run: bool = False) -> DeleteResult:
        """Delete an entity no live feature view uses (Conflict naming them otherwise)."""
        at = self.catalog.delete_entity(name, dry_run=dry_run)
        return DeleteResult("entity", name, deleted_at=None if dry_run else at, dry_run=dry_run)

    def list_views(self) -> list[ViewInfo]:
        """Every view at its latest version, with its versions and (feature views) freshness."""
        fresh = {(f.view, f.version): f for f in self.online.freshness()}
        return [self.catalog.view_info(name, freshness=fresh) for name in self.catalog.view_names()]

    def get_view(self, name: str, version: int | None = None) -> ViewInfo:
        """One view (latest version unless ``version``); NotFound if unknown."""
        fresh = {(f.view, f.version): f for f in self.online.freshness()}
        return self.catalog.view_info(name, version=version, freshness=fresh)

    def get_definition(self, name: str, version: int | None = None) -> View:
        """The definition object of a registered view version."""
        return self.catalog.resolve(name, version).definition

    def sample(self, view: str, n: int = 20, *, version: int | None = None) -> pl.DataFrame:
        """The newest ``n`` rows of a feature view's source (keys, timestamps, features)."""
        from mlbox.features import retrieval

        resolved = self.catalog.resolve(view, version)
        return retrieval.sample(resolved, n, self._duckdb_config())

    # -- offline -------------------------------------------------------------------------

    def get_historical_features(
        self,
        entity_df: pl.DataFrame | pd.DataFrame,
        features: Sequence[str],
        *,
        full_feature_names: bool = False,
        timestamp_field: str = "event_timestamp",
        memory_limit: str | None = None,
        run_id: int | None = None,
        name: str | None = None,
    ) -> RetrievalJob:
        """A point-in-time correct training frame, computed now (`mlbox.features.pointintime`).

        ``entity_df`` (polars or pandas) holds the join keys of every requested
        view and a ``timestamp_field`` datetime column. For each entity row and
        view: the feature row with the latest event time at or before the row's
        time (ties: latest created time), nulled when older than the view's TTL.
        Every entity row comes back once, in input order, with its own columns
        first. ``features`` are ``view:feature``, ``view:*`` or pinned
        ``view:feature@v2``. Columns are the feature names, or ``view__feature``
        with ``full_feature_names``. An on-demand feature that reads request fields
        takes them from the entity frame's columns of those names. The training-set
        record is saved and its id is ``job.training_set_id``; ``job.to_polars()`` /
        ``job.to_pandas()``.
        """
        from mlbox.features import retrieval

        plan = self.catalog.resolve_features(features)
        frame, entity_hash, entity_rows = self._historical(
            entity_df, plan, timestamp_field, full_feature_names, memory_limit
        )
        record = trainingsets.record_training_set(
            self.db,
            plan,
            entity_hash=entity_hash,
            entity_rows=entity_rows,
            row_count=frame.height,
            columns=frame.columns,
            full_feature_names=full_feature_names,
            timestamp_field=timestamp_field,
            run_id=run_id,
            name=name,
        )
        return retrieval.RetrievalJob(frame, record)

    def lookup_historical(
        self,
        entity_df: pl.DataFrame | pd.DataFrame,
        features: Sequence[str],
        *,
        timestamp_field: str = "event_timestamp",
        full_feature_names: bool = False,
    ) -> pl.DataFrame:
        """`get_historical_features`'s frame without a training-set record: point-in-time
        values to score a model with (``mlbox predict``), where a record per scored
        chunk would bury the training sets in noise."""
        plan = self.catalog.resolve_features(features)
        frame, _, _ = self._historical(entity_df, plan, timestamp_field, full_feature_names, None)
        return frame

    def join_keys(self, features: Sequence[str]) -> tuple[str, ...]:
        """The join keys an entity row needs to look ``features`` up (NotFound for an
        unknown or deleted view)."""
        return self.catalog.resolve_features(features).join_keys

    def request_fields(self, features: Sequence[str]) -> dict[str, str]:
        """The request values (name → dtype) an entity row must carry besides its join
        keys for ``features``: the request fields their on-demand expressions read."""
        return self.catalog.resolve_features(features).request_fields

    def _historical(
        self,
        entity_df: pl.DataFrame | pd.DataFrame,
        plan: FeaturePlan,
        timestamp_field: str,
        full_feature_names: bool,
        memory_limit: str | None,
    ) -> tuple[pl.DataFrame, str, int]:
        from mlbox.features import retrieval

        return retrieval.historical(
            entity_df,
            plan,
            timestamp_field=timestamp_field,
            full_feature_names=full_feature_names,
            config=self._duckdb_config(memory_limit),
        )

    def training_sets(self, *, limit: int = 100, view: str | None = None) -> list[TrainingSetInfo]:
        """Training-set records, newest first; ``view`` keeps those built from it."""
        return trainingsets.training_sets(self.db, limit=limit, view=view)

    def training_set(self, training_set_id: int) -> TrainingSetInfo:
        return trainingsets.training_set(self.db, training_set_id)

    # -- online --------------------------------------------------------------------------

    def materialize(
        self,
        start: datetime,
        end: datetime,
        views: Sequence[str] | None = None,
        *,
        chunk: timedelta | None = None,
        progress: Callable[[MaterializeProgress], None] | None = None,
    ) -> list[MaterializeResult]:
        """Copy the latest row per entity with ``start <= event_ts <= end`` of each
        view's latest version (all feature views unless ``views``) into the online
        store. ``chunk`` splits a backfill into windows, oldest first, reporting
        each to ``progress``. A stored value is replaced only by a newer one
        (event time, then created time), so re-running or overlapping is safe.
        Naive datetimes mean UTC.
        """
        from mlbox.features.materialize import materialize

        targets = self.catalog.feature_views(views)
        return materialize(
            self.online, targets, start, end, chunk=chunk, progress=progress, config=self._duckdb_config()
        )

    def materialize_incremental(
        self,
        end: datetime | None = None,
        views: Sequence[str] | None = None,
        *,
        chunk: timedelta | None = None,
        progress: Callable[[MaterializeProgress], None] | None = None,
    ) -> list[MaterializeResult]:
        """Materialize each view from where it last stopped up to ``end`` (now by
        default). A view never materialized starts at ``end - ttl``, or at its
        oldest event when it has no TTL."""
        from mlbox.features.materialize import materialize_incremental

        targets = self.catalog.feature_views(views)
        return materialize_incremental(
            self.online, targets, end, chunk=chunk, progress=progress, config=self._duckdb_config()
        )

    def freshness(self) -> list[Freshness]:
        """Per materialized version of a live view: last window end, newest event time, rows."""
        live = set(self.catalog.view_names())
        return [f for f in self.online.freshness() if f.view in live]

    def get_online_features(
        self,
        entity_rows: Sequence[Mapping[str, Any]],
        features: Sequence[str],
        *,
        with_event_time: bool = False,
        full_feature_names: bool = False,
        now: float | None = None,
    ) -> dict[str, list[Any]]:
        """Feast's ``to_dict()`` shape: each join key and feature name → one value per
        entity row (None when missing, or older than the view's TTL at ``now``).
        An on-demand feature reading request fields takes them from each entity row,
        beside its join keys (``{"user_id": 7, "amount": 12.5}``, as Feast does).

        ``with_event_time`` adds ``<feature>__event_ts`` (epoch seconds) and
        ``<feature>__age_s`` per feature. One SQLite query per view; the plan for a
        feature list is cached, so a repeated call costs one indexed lookup.
        """
        return self.online.get(
            entity_rows,
            self.catalog.online_plan(tuple(features)),
            with_event_time=with_event_time,
            full_feature_names=full_feature_names,
            now=now,
        )

    # -- internals -----------------------------------------------------------------------

    def _duckdb_config(self, memory_limit: str | None = None) -> dict[str, Any]:
        tmp = private.make_dirs(self.root / "tmp")
        config: dict[str, Any] = {
            "memory_limit": self.memory_limit if memory_limit is None else check_memory_limit(memory_limit),
            "temp_directory": str(tmp),
            **src.DESCRIBE_CONFIG,
        }
        if self.threads:
            config["threads"] = self.threads
        return config
