"""Definitions: YAML loading, versioning, and a clear error for each bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from mlbox.features import (
    Entity,
    FeatureView,
    Field,
    FrameSource,
    OnDemandFeatureView,
    ParquetSource,
    load_definitions,
)
from mlbox.features.migrations import migrations, online_migrations
from mlbox.features.service import FeatureStore
from mlbox.store import Database, Home
from mlbox.store.errors import InvalidInput, MlboxError

T0 = datetime(2024, 1, 1)

YAML = """
entities:
  - name: driver
    join_keys: [driver_id]
    description: a driver
feature_views:
  - name: stats
    entities: [driver]
    source: {parquet: data/stats.parquet}
    timestamp_field: ts
    created_timestamp_field: created
    ttl: 2h
    features:
      - {name: trips, dtype: int64}
      - rate: float64
  - name: by_sql
    entities: [driver]
    source: {sql: "SELECT * FROM read_parquet('data/stats.parquet') WHERE trips > 10"}
    timestamp_field: ts
    features: [{name: rate}]
on_demand_feature_views:
  - name: derived
    sources: [stats]
    features:
      - {name: per_trip, dtype: float64, expression: "rate / trips"}
"""


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    home = Home(tmp_path / "home").ensure()
    return FeatureStore(Database(home.db_path), home)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    pl.DataFrame(
        {
            "driver_id": [1, 2],
            "ts": [T0, T0],
            "created": [T0, T0],
            "trips": [10, 20],
            "rate": [0.5, 0.25],
            "name": ["a", "b"],
        }
    ).write_parquet(tmp_path / "data" / "stats.parquet")
    return tmp_path


def test_yaml_definitions_apply_and_list(store: FeatureStore, data: Path) -> None:
    (data / "features.yaml").write_text(YAML)
    defs = load_definitions(data / "features.yaml")
    assert [d.name for d in defs] == ["driver", "stats", "by_sql", "derived"]
    result = store.apply(data / "features.yaml")
    assert [(c.name, c.action) for c in result.changes] == [
        ("driver", "created"), ("stats", "created"), ("by_sql", "created"), ("derived", "created"),
    ]  # fmt: skip
    assert not store.apply(data / "features.yaml").changed  # same file: nothing new
    assert [e.name for e in store.list_entities()] == ["driver"]
    views = {v.name: v for v in store.list_views()}
    assert views["stats"].ttl_s == 7200 and views["stats"].join_keys == ["driver_id"]
    assert views["derived"].sources == ["stats@v1"]
    ent = pl.DataFrame({"driver_id": [1, 2], "event_timestamp": [T0 + timedelta(hours=1)] * 2})
    out = store.get_historical_features(ent, ["derived:per_trip", "by_sql:rate"], full_feature_names=True)
    assert out.to_polars()["derived__per_trip"].to_list() == [0.05, 0.0125]
    assert out.to_polars()["by_sql__rate"].to_list() == [None, 0.25]  # the query's WHERE drops driver 1
    # dry run reports a change without writing it
    changed = YAML.replace("ttl: 2h", "ttl: 3h")
    (data / "features.yaml").write_text(changed)
    plan = store.apply(data / "features.yaml", dry_run=True)
    assert {c.name: c.action for c in plan.changes}["stats"] == "updated"
    assert store.get_view("stats").version == 1
    real = store.apply(data / "features.yaml")
    actions = {c.name: (c.action, c.version) for c in real.changes}
    # the on-demand view pins its source's hash, so it gets a new version too
    assert actions["stats"] == ("updated", 2) and actions["derived"] == ("updated", 2)
    assert store.get_view("derived").sources == ["stats@v2"]
    assert store.get_view("derived", 1).sources == ["stats@v1"]


def _view(path: Path, **kw: object) -> FeatureView:
    args: dict[str, object] = {
        "name": "fv",
        "entities": ["driver"],
        "source": ParquetSource(path),
        "timestamp_field": "ts",
        "features": [Field("trips", "int64")],
    }
    args.update(kw)
    return FeatureView(**args)  # type: ignore[arg-type]


def test_bad_definitions_name_the_problem(store: FeatureStore, data: Path) -> None:
    src = data / "data" / "stats.parquet"
    driver = Entity("driver", "driver_id")
    cases: list[tuple[list[object], str, str]] = [
        ([Entity("driver", "nope"), _view(src)], "join key 'nope' is not a column", "join_keys"),
        ([driver, _view(src, timestamp_field="when")], "timestamp_field 'when' is not a column", "timestamp_field"),
        ([driver, _view(src, timestamp_field="trips", features=[Field("rate")])], "not a timestamp", "timestamp_field"),
        ([driver, _view(src, features=[Field("missing")])], "feature 'missing' is not a column", "features"),
        ([driver, _view(src, features=[Field("name", "float64")])], "declared float64 but the source column is VARCHAR", "features"),
        ([driver, _view(src, features=[Field("rate", "int64")])], "declared int64 but the source column is DOUBLE", "features"),
        ([driver, driver, _view(src)], "duplicate definition: entity 'driver'", "name"),
        ([driver, _view(src), _view(src)], "duplicate definition: view 'fv'", "name"),
        ([_view(src, entities=["ghost"])], "unknown entity 'ghost'", "entities"),
        ([driver, _view(data / "nothing.parquet")], "does not exist", "source"),
        (
            [driver, _view(src), OnDemandFeatureView("od", ["fv"], [Field("y")], {"y": "unknown_col * 2"})],
            "cannot be computed",
            "expressions",
        ),
        ([driver, OnDemandFeatureView("od", ["nope"], [Field("y")], {"y": "1"})], "unknown source view 'nope'", "sources"),
    ]  # fmt: skip
    for defs, message, field in cases:
        with pytest.raises(InvalidInput, match=message) as err:
            store.apply(defs)  # type: ignore[arg-type]
        assert err.value.field == field, message
    assert store.list_views() == [] and store.list_entities() == []  # nothing half-applied


def test_tz_mixing_and_entity_frame_errors(store: FeatureStore, tmp_path: Path) -> None:
    mixed = pl.DataFrame({"driver_id": [1], "ts": [T0], "created": [T0.replace(tzinfo=UTC)], "trips": [1]})
    with pytest.raises(InvalidInput, match="mix timezone-naive and timezone-aware"):
        store.apply([Entity("driver", "driver_id"), _frame_view(mixed, created_timestamp_field="created")])
    naive = pl.DataFrame({"driver_id": [1], "ts": [T0], "trips": [1]})
    store.apply([Entity("driver", "driver_id"), _frame_view(naive)])
    aware_entities = pl.DataFrame({"driver_id": [1], "event_timestamp": [T0.replace(tzinfo=UTC)]})
    with pytest.raises(InvalidInput, match="timezone-aware but view 'fv'") as err:
        store.get_historical_features(aware_entities, ["fv:trips"])
    assert err.value.field == "entity_df"
    bad: list[tuple[pl.DataFrame, list[str], str]] = [
        (pl.DataFrame({"driver_id": [1]}), ["fv:trips"], "no 'event_timestamp' column"),
        (pl.DataFrame({"user": [1], "event_timestamp": [T0]}), ["fv:trips"], "lacks join key 'driver_id'"),
        (
            pl.DataFrame({"driver_id": ["1"], "event_timestamp": [T0]}),
            ["fv:trips"],
            "join key 'driver_id' is String",
        ),
        (pl.DataFrame({"driver_id": [1], "event_timestamp": ["2024"]}), ["fv:trips"], "not a datetime"),
        (pl.DataFrame({"driver_id": [1], "event_timestamp": [T0]}), ["fv:nope"], "unknown feature 'nope'"),
        (
            pl.DataFrame({"driver_id": [1], "event_timestamp": [T0], "trips": [0]}),
            ["fv:trips"],
            "has the name of",
        ),
        (pl.DataFrame({"driver_id": [1], "event_timestamp": [T0]}), ["fv:trips@v9"], "has no version 9"),
    ]
    for frame, refs, message in bad:
        with pytest.raises(MlboxError, match=message):
            store.get_historical_features(frame, refs)
    with pytest.raises(InvalidInput, match="polars or pandas"):
        store.get_historical_features([{"driver_id": 1}], ["fv:trips"])


def _frame_view(frame: pl.DataFrame, **kw: object) -> FeatureView:
    return FeatureView("fv", ["driver"], FrameSource(frame), "ts", [Field("trips", "int64")], **kw)  # type: ignore[arg-type]


def test_constructor_and_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="must be an identifier"):
        Entity("bad name", "k")
    with pytest.raises(InvalidInput, match="unknown dtype"):
        Field("x", "float128")
    with pytest.raises(InvalidInput, match="declares 'x' twice"):
        FeatureView("v", ["e"], ParquetSource("p"), "ts", [Field("x"), Field("x")])
    with pytest.raises(InvalidInput, match="ttl must be positive"):
        FeatureView(
            "v", ["e"], ParquetSource("p"), "ts", [Field("x")], ttl=timedelta(0) - timedelta(seconds=1)
        )
    with pytest.raises(InvalidInput, match="no expression for"):
        OnDemandFeatureView("o", ["v"], [Field("y")], {})
    with pytest.raises(InvalidInput, match="cannot parse expression"):
        OnDemandFeatureView("o", ["v"], [Field("y")], {"y": "x +* 2"})
    bad = tmp_path / "bad.yaml"
    for text, message in [
        ("views: []", "unknown section 'views'"),
        ("entities:\n  - name: e\n", "missing key 'join_keys'"),
        ("feature_views:\n  - {name: v, entities: [e], source: {s3: x}, timestamp_field: t, features: [x: float64]}",
         "source must be one of"),
        ("feature_views:\n  - {name: v, entities: [e], source: {parquet: x}, timestamp_field: t, ttl: soon, "
         "features: [x: float64]}", "not a duration"),
        ("entities: [", "not valid YAML"),
    ]:  # fmt: skip
        bad.write_text(text)
        with pytest.raises(InvalidInput, match=message):
            load_definitions(bad)
    with pytest.raises(InvalidInput, match="does not exist"):
        load_definitions(tmp_path / "missing.yaml")


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db")
    assert migrations.apply(db) == ["m001_features", "m002_view_deletions"]
    assert migrations.apply(db) == []
    tables = {r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "feature_entities",
        "feature_view_versions",
        "feature_training_sets",
        "feature_view_deletions",
    } <= tables
    online = Database(tmp_path / "o.db")
    assert online_migrations.apply(online) == ["m001_online"]
    assert online_migrations.apply(online) == []
