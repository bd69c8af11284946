"""The registry of feature definitions in SQLite: versions, resolution, deletion.

Invariants:

* A view version is written once and never updated (a trigger refuses it). A
  new version is made exactly when the hash of the view's canonical
  definition, with its resolved join keys (and, for an on-demand view, its
  source views' hashes), differs from the latest version's.
* `apply` validates every definition against its source first (`prepare`) and
  writes all of them in one ``BEGIN IMMEDIATE`` transaction, so a bad file
  changes nothing.
* A version is never removed, so a training-set record (`trainingsets`; its
  tables are among these migrations) names pinned versions, and rebuilding it
  later with the same entity frame gives the same frame even after the views changed.
* Deleting a view is a row in ``feature_view_deletions``, never a removal of
  its versions: it stops listing and resolving (every reference to it fails
  with NotFound saying it was deleted), its training sets keep their lineage,
  and applying its definition again makes it live (same hash: same version).
  A view is deleted only when nothing live reads it: no live on-demand view
  and no registered model version (checked in the same transaction).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlbox.features import deletion, prepare
from mlbox.features.definitions import (
    Definition,
    Entity,
    FeatureView,
    OnDemandFeatureView,
    ParquetSource,
    Source,
    canonical_json,
    from_canonical,
)
from mlbox.features.deletion import ModelFeatures
from mlbox.features.migrations import migrations
from mlbox.features.refs import FeaturePlan, OnDemandRequest, Output, ResolvedView, ViewRequest, parse_ref
from mlbox.features.schemas import (
    ApplyChange,
    ApplyResult,
    EntityInfo,
    FieldInfo,
    Freshness,
    ViewInfo,
    ViewVersionInfo,
)
from mlbox.store.db import Database
from mlbox.store.errors import InvalidInput, NotFound

ONLINE_PLAN_TTL_S = 2.0  # another process may apply a new version; re-resolve this often


class Catalog:
    def __init__(self, db: Database, *, frames_dir: Path) -> None:
        self.db = db
        self.frames_dir = frames_dir
        migrations.apply(db)
        self._pinned: dict[tuple[str, int], ResolvedView] = {}
        self._plans: dict[tuple[str, ...], tuple[float, FeaturePlan]] = {}
        self._lock = threading.Lock()

    # -- apply ---------------------------------------------------------------------------

    def apply(self, defs: Sequence[Definition], *, dry_run: bool = False) -> ApplyResult:
        prepare.check_duplicates(defs)
        entities = {e.name: e for e in self._stored_entities()}
        entities.update({d.name: d for d in defs if isinstance(d, Entity)})
        prepared: list[tuple[str, str, dict[str, Any], Any]] = []  # (kind, name, stored json, frame)
        fv_hashes: dict[str, tuple[str, tuple[str, ...], dict[str, str]]] = {}
        for d in defs:
            if isinstance(d, FeatureView):
                stored, frame = prepare.prepare_view(d, entities)
                fv_hashes[d.name] = (
                    stored["__hash"],
                    tuple(stored["join_keys"]),
                    {f.name: f.dtype for f in d.features},
                )
                prepared.append(("feature_view", d.name, stored, frame))
        for d in defs:
            if isinstance(d, OnDemandFeatureView):
                prepared.append(
                    (
                        "on_demand_feature_view",
                        d.name,
                        prepare.prepare_on_demand(d, fv_hashes, resolve=self.resolve, db=self.db),
                        None,
                    )
                )
        changes: list[ApplyChange] = []
        now = time.time()
        with self.db.atomic() as conn:
            for d in defs:
                if isinstance(d, Entity):
                    row = conn.execute(
                        "SELECT join_keys, description FROM feature_entities WHERE name = ?", (d.name,)
                    ).fetchone()
                    keys = json.dumps(list(d.join_keys))
                    if row is None:
                        action = "created"
                    elif (row["join_keys"], row["description"]) != (keys, d.description):
                        action = "updated"
                    else:
                        action = "unchanged"
                    changes.append(ApplyChange("entity", d.name, action))
                    if action != "unchanged" and not dry_run:
                        conn.execute(
                            "INSERT INTO feature_entities (name, join_keys, description, created_at, updated_at)"
                            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET join_keys = excluded.join_keys,"
                            " description = excluded.description, updated_at = excluded.updated_at",
                            (d.name, keys, d.description, now, now),
                        )
            for kind, name, stored, frame in prepared:
                digest = stored.pop("__hash")
                row = conn.execute(
                    "SELECT version, hash, kind FROM feature_view_versions WHERE name = ? ORDER BY version DESC LIMIT 1",
                    (name,),
                ).fetchone()
                if row is not None and row["kind"] != kind:
                    raise InvalidInput(
                        f"{name!r} is registered as a {row['kind']}, not a {kind}", field="name"
                    )
                deleted = deletion.is_deleted(conn, name)
                if deleted and not dry_run:
                    conn.execute("DELETE FROM feature_view_deletions WHERE name = ?", (name,))
                if row is not None and row["hash"] == digest:
                    action = "restored" if deleted else "unchanged"
                    changes.append(ApplyChange(kind, name, action, row["version"], digest))
                    continue
                version = 1 if row is None else row["version"] + 1
                action = "created" if row is None else "restored" if deleted else "updated"
                changes.append(ApplyChange(kind, name, action, version, digest))
                if dry_run:
                    continue
                if frame is not None:
                    from mlbox.store.tables import write_parquet

                    path = self.frames_dir / f"{stored['source']['sha256']}.parquet"
                    if not path.exists():
                        write_parquet(frame, path)
                conn.execute(
                    "INSERT INTO feature_view_versions (name, version, kind, hash, definition, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (name, version, kind, digest, canonical_json(stored), now),
                )
        with self._lock:
            self._plans.clear()
        return ApplyResult(changes)

    # -- reading -------------------------------------------------------------------------

    def _stored_entities(self) -> list[Entity]:
        rows = self.db.query("SELECT name, join_keys, description FROM feature_entities ORDER BY name")
        return [Entity(r["name"], json.loads(r["join_keys"]), r["description"]) for r in rows]

    def list_entities(self) -> list[EntityInfo]:
        rows = self.db.query("SELECT * FROM feature_entities ORDER BY name")
        return [
            EntityInfo(
                r["name"], json.loads(r["join_keys"]), r["description"], r["created_at"], r["updated_at"]
            )
            for r in rows
        ]

    def view_names(self) -> list[str]:
        """The live views (deleted ones are left out)."""
        return [
            r["name"]
            for r in self.db.query(
                "SELECT DISTINCT name FROM feature_view_versions"
                " WHERE name NOT IN (SELECT name FROM feature_view_deletions) ORDER BY name"
            )
        ]

    def resolve(self, name: str, version: int | str | None = None) -> ResolvedView:
        """A view version: latest when ``version`` is None, else a number or a hash prefix.

        NotFound for a deleted view, whichever version is asked for: its versions
        are kept for lineage, not for use."""
        if deletion.is_deleted(self.db.conn, name):
            raise NotFound(
                f"feature view {name!r} was deleted (apply its definition again to restore it)",
                field="features",
            )
        if isinstance(version, int) and (name, version) in self._pinned:
            return self._pinned[(name, version)]
        if version is None:
            row = self.db.query_one(
                "SELECT * FROM feature_view_versions WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
            )
        elif isinstance(version, int):
            row = self.db.query_one(
                "SELECT * FROM feature_view_versions WHERE name = ? AND version = ?", (name, version)
            )
        else:
            rows = self.db.query(
                "SELECT * FROM feature_view_versions WHERE name = ? AND hash LIKE ? ORDER BY version DESC",
                (name, version + "%"),
            )
            if len({r["hash"] for r in rows}) > 1:
                raise InvalidInput(f"version {version!r} of {name!r} is ambiguous", field="features")
            row = rows[0] if rows else None
        if row is None:
            if self.db.query_one("SELECT 1 FROM feature_view_versions WHERE name = ?", (name,)) is None:
                raise NotFound(f"no feature view named {name!r}", field="features")
            raise NotFound(f"feature view {name!r} has no version {version!r}", field="features")
        resolved = self._from_row(row)
        self._pinned[(resolved.name, resolved.version)] = resolved
        return resolved

    def _from_row(self, row: Any) -> ResolvedView:
        data = json.loads(row["definition"])
        definition = from_canonical(data, frames_dir=self.frames_dir)
        if isinstance(definition, Entity):
            raise AssertionError("an entity stored as a view")
        pins: tuple[tuple[str, int], ...] = ()
        if isinstance(definition, OnDemandFeatureView):
            pins = tuple(self._pin_source(n, h) for n, h in sorted(data["source_hashes"].items()))
        return ResolvedView(
            row["name"],
            row["version"],
            row["hash"],
            definition,
            tuple(data["join_keys"]),
            row["created_at"],
            pins,
        )

    def _pin_source(self, name: str, digest: str) -> tuple[str, int]:
        row = self.db.query_one(
            "SELECT version FROM feature_view_versions WHERE name = ? AND hash = ? ORDER BY version LIMIT 1",
            (name, digest),
        )
        if row is None:
            raise NotFound(f"source view {name!r} version {digest} is not registered", field="sources")
        return name, int(row["version"])

    def feature_views(self, names: Sequence[str] | None) -> list[ResolvedView]:
        """Latest versions of the named feature views (all when None); on-demand views refused."""
        wanted = list(names) if names is not None else self.view_names()
        out = [self.resolve(n) for n in wanted]
        if names is not None:
            for r in out:
                if not isinstance(r.definition, FeatureView):
                    raise InvalidInput(
                        f"{r.name!r} is an on-demand view; it is computed, not materialized", field="views"
                    )
        return [r for r in out if isinstance(r.definition, FeatureView)]

    def view_info(
        self,
        name: str,
        *,
        version: int | None = None,
        freshness: dict[tuple[str, int], Freshness] | None = None,
    ) -> ViewInfo:
        r = self.resolve(name, version)
        versions = [
            ViewVersionInfo(v["version"], v["hash"], v["created_at"])
            for v in self.db.query(
                "SELECT version, hash, created_at FROM feature_view_versions WHERE name = ? ORDER BY version",
                (name,),
            )
        ]
        d = r.definition
        fields = [FieldInfo(f.name, f.dtype, f.description) for f in d.features]
        if isinstance(d, FeatureView):
            return ViewInfo(
                d.name, r.kind, r.version, r.hash, versions, list(d.entities), list(r.join_keys), fields,
                None if d.ttl is None else d.ttl.total_seconds(), _describe_source(d.source),
                d.timestamp_field, d.created_timestamp_field, [], d.description, r.created_at,
                (freshness or {}).get((r.name, r.version)),
            )  # fmt: skip
        return ViewInfo(
            d.name, r.kind, r.version, r.hash, versions, [], [], fields, None, "on demand", None, None,
            [f"{n}@v{v}" for n, v in r.source_versions], d.description, r.created_at,
            request=[FieldInfo(f.name, f.dtype, f.description) for f in d.request],
        )  # fmt: skip

    # -- deleting (`mlbox.features.deletion`) ---------------------------------------------

    def delete_view(
        self, name: str, *, model_features: ModelFeatures | None = None, dry_run: bool = False
    ) -> tuple[list[int], float]:
        """Mark a live view deleted (`deletion.delete_view`); its kept versions and the time."""
        result = deletion.delete_view(self.db, name, model_features=model_features, dry_run=dry_run)
        if not dry_run:
            self.forget(name)
        return result

    def delete_entity(self, name: str, *, dry_run: bool = False) -> float:
        """Remove an entity no live feature view uses (`deletion.delete_entity`)."""
        return deletion.delete_entity(self.db, name, dry_run=dry_run)

    def is_deleted(self, name: str) -> bool:
        return deletion.is_deleted(self.db.conn, name)

    def forget(self, name: str) -> None:
        """Drop this process's cached resolutions of ``name`` (other processes
        re-resolve within `ONLINE_PLAN_TTL_S`)."""
        with self._lock:
            self._plans.clear()
            for key in [k for k in self._pinned if k[0] == name]:
                self._pinned.pop(key, None)

    # -- requests ------------------------------------------------------------------------

    def resolve_features(self, refs: Sequence[str]) -> FeaturePlan:
        """Resolve references to pinned versions and the columns to fetch."""
        if isinstance(refs, str) or not refs:
            raise InvalidInput("features must be a non-empty list of 'view:feature'", field="features")
        chosen: dict[str, ResolvedView] = {}
        outputs: list[Output] = []
        for text in refs:
            ref = parse_ref(text)
            view = self.resolve(ref.view, ref.version)
            if ref.view in chosen and chosen[ref.view].version != view.version:
                raise InvalidInput(
                    f"{ref.view!r} is requested at versions {chosen[ref.view].version} and {view.version}; "
                    "one version per view in a request",
                    field="features",
                )
            chosen[ref.view] = view
            dtypes = view.dtypes
            names = list(dtypes) if ref.feature == "*" else [ref.feature]
            for fname in names:
                if fname not in dtypes:
                    raise InvalidInput(
                        f"unknown feature {fname!r} in view {view.name!r} v{view.version} "
                        f"(has {', '.join(dtypes)})",
                        field="features",
                    )
                out = Output(view.name, fname, dtypes[fname], view.kind == "on_demand_feature_view")
                if out not in outputs:
                    outputs.append(out)
        fetch: dict[str, list[str]] = {}
        fv: dict[str, ResolvedView] = {}
        on_demand: list[OnDemandRequest] = []
        request: dict[str, tuple[str, str]] = {}  # request field -> (dtype, on-demand view)
        for name, view in chosen.items():
            if isinstance(view.definition, OnDemandFeatureView):
                asked = tuple(o.feature for o in outputs if o.view == name)
                used = view.definition.request_used(asked)
                for f in used:
                    dtype, other = request.setdefault(f.name, (f.dtype, name))
                    if dtype != f.dtype:
                        raise InvalidInput(
                            f"request field {f.name!r} is {dtype} in on-demand view {other!r} but {f.dtype} "
                            f"in {name!r}; one value cannot be both",
                            field="features",
                        )
                on_demand.append(OnDemandRequest(view, asked, tuple((f.name, f.dtype) for f in used)))
                for src_name, src_version in view.source_versions:
                    source = self.resolve(src_name, src_version)
                    if src_name in fv and fv[src_name].version != src_version:
                        raise InvalidInput(
                            f"on-demand view {name!r} needs {src_name!r} v{src_version} but the request uses "
                            f"v{fv[src_name].version}",
                            field="features",
                        )
                    fv[src_name] = source
                    bucket = fetch.setdefault(src_name, [])
                    bucket.extend(f for f in source.dtypes if f not in bucket)
            else:
                if name in fv and fv[name].version != view.version:
                    raise InvalidInput(f"{name!r} is requested at two versions", field="features")
                fv[name] = view
                bucket = fetch.setdefault(name, [])
                bucket.extend(o.feature for o in outputs if o.view == name and o.feature not in bucket)
        views = tuple(ViewRequest(fv[n], tuple(fetch[n])) for n in fetch)
        pinned = tuple(f"{o.view}:{o.feature}@v{chosen[o.view].version}" for o in outputs)
        return FeaturePlan(views, tuple(on_demand), tuple(outputs), pinned)

    def online_plan(self, refs: tuple[str, ...]) -> FeaturePlan:
        """`resolve_features`, cached for a short while: online reads are hot."""
        now = time.monotonic()
        hit = self._plans.get(refs)
        if hit is not None and now - hit[0] < ONLINE_PLAN_TTL_S:
            return hit[1]
        plan = self.resolve_features(refs)
        with self._lock:
            if len(self._plans) > 1024:
                self._plans.clear()
            self._plans[refs] = (now, plan)
        return plan


def _describe_source(source: Source) -> str:
    if isinstance(source, ParquetSource):
        return f"parquet: {source.path}"
    if hasattr(source, "path"):
        return f"csv: {source.path}"
    if hasattr(source, "query"):
        return f"sql: {' '.join(source.query.split())}"
    return "frame"
