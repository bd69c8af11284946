"""Training-set records: what each point-in-time frame was built from (lineage).

`FeatureStore.get_historical_features` saves one record per frame in
``feature_training_sets``, with its views in ``feature_training_set_views`` (so
the records built from a view are found by index). A record names the pinned
view versions (``view:feature@v2``) and a hash of the entity frame, so
rebuilding it later with the same entity frame gives the same frame even after
the views changed, and deleting a view leaves its training sets' lineage
whole. The tables are the catalog's migrations (`catalog.Catalog` applies them).
"""

from __future__ import annotations

import json
import time
from typing import Any

from mlbox.features.refs import FeaturePlan
from mlbox.features.schemas import TrainingSetInfo, TrainingSetView
from mlbox.store.db import Database
from mlbox.store.errors import NotFound


def record_training_set(
    db: Database,
    plan: FeaturePlan,
    *,
    entity_hash: str,
    entity_rows: int,
    row_count: int,
    columns: list[str],
    full_feature_names: bool,
    timestamp_field: str,
    run_id: int | None,
    name: str | None,
) -> TrainingSetInfo:
    """Save the record of a training set built from ``plan`` (its pinned versions) and
    return it."""
    views = [TrainingSetView(r.view.name, r.view.version, r.view.hash) for r in plan.views]
    views += [TrainingSetView(r.view.name, r.view.version, r.view.hash) for r in plan.on_demand]
    now = time.time()
    with db.atomic() as conn:
        cur = conn.execute(
            "INSERT INTO feature_training_sets (name, created_at, features, views, entity_hash, entity_rows,"
            " row_count, columns, full_feature_names, timestamp_field, run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                name, now, json.dumps(list(plan.pinned)), json.dumps([[v.name, v.version, v.hash] for v in views]),
                entity_hash, entity_rows, row_count, json.dumps(columns), int(full_feature_names),
                timestamp_field, run_id,
            ),
        )  # fmt: skip
        ts_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT OR IGNORE INTO feature_training_set_views (training_set, view, version) VALUES (?, ?, ?)",
            [(ts_id, v.name, v.version) for v in views],
        )
    return training_set(db, ts_id)


def training_sets(db: Database, *, limit: int = 100, view: str | None = None) -> list[TrainingSetInfo]:
    """Training-set records, newest first; ``view`` keeps those built from it."""
    if view is None:
        rows = db.query("SELECT * FROM feature_training_sets ORDER BY id DESC LIMIT ?", (limit,))
    else:
        rows = db.query(
            "SELECT * FROM feature_training_sets WHERE id IN"
            " (SELECT training_set FROM feature_training_set_views WHERE view = ?) ORDER BY id DESC LIMIT ?",
            (view, limit),
        )
    return [_training_set(r) for r in rows]


def training_set(db: Database, training_set_id: int) -> TrainingSetInfo:
    row = db.query_one("SELECT * FROM feature_training_sets WHERE id = ?", (training_set_id,))
    if row is None:
        raise NotFound(f"no training set {training_set_id}", field="training_set")
    return _training_set(row)


def _training_set(r: Any) -> TrainingSetInfo:
    return TrainingSetInfo(
        id=r["id"],
        created_at=r["created_at"],
        features=json.loads(r["features"]),
        views=[TrainingSetView(n, v, h) for n, v, h in json.loads(r["views"])],
        entity_hash=r["entity_hash"],
        entity_rows=r["entity_rows"],
        row_count=r["row_count"],
        columns=json.loads(r["columns"]),
        full_feature_names=bool(r["full_feature_names"]),
        timestamp_field=r["timestamp_field"],
        run_id=r["run_id"],
        name=r["name"],
    )
