"""Materialization and online reads: online values equal the latest offline values,
TTL at read time, upserts that only move forward, backfill windows, freshness."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from mlbox.features import CsvSource, Entity, FeatureView, Field, OnDemandFeatureView, ParquetSource
from mlbox.features.service import FeatureStore
from mlbox.services import Services
from mlbox.store import Database, Home
from mlbox.store.errors import InvalidInput, NotFound

T0 = datetime(2024, 5, 1)


def make_store(root: Path) -> FeatureStore:
    home = Home(root / "home").ensure()
    return FeatureStore(Database(home.db_path), home)


@pytest.fixture
def random_source(tmp_path: Path) -> Path:
    rng = random.Random(7)
    rows = []
    for i in range(3000):
        ev = T0 + timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
        rows.append(
            (
                rng.randrange(200),
                ev,
                ev + timedelta(minutes=rng.randrange(0, 90)),
                float(i),
                i % 2 == 0,
                f"s{i}",
            )
        )
    frame = pl.DataFrame(rows, schema=["k", "ev", "cr", "x", "flag", "label"], orient="row")
    frame.write_parquet(tmp_path / "src.parquet")
    return tmp_path / "src.parquet"


def _apply(store: FeatureStore, path: Path, ttl: timedelta | None = None) -> None:
    store.apply(
        [
            Entity("user", "k"),
            FeatureView(
                "fv", ["user"], ParquetSource(path), "ev",
                [Field("x"), Field("flag", "bool"), Field("label", "string")], created_timestamp_field="cr", ttl=ttl,
            ),
            OnDemandFeatureView("od", ["fv"], [Field("x2", "float64")], {"x2": "x * 2"}),
        ]
    )  # fmt: skip


def test_online_equals_latest_offline(tmp_path: Path, random_source: Path) -> None:
    store = make_store(tmp_path)
    _apply(store, random_source)
    end = T0 + timedelta(days=3)
    seen: list[tuple[int, int]] = []
    results = store.materialize(
        T0, end, chunk=timedelta(hours=12), progress=lambda p: seen.append((p.chunk, p.chunks))
    )
    assert seen == [(i, 6) for i in range(1, 7)]
    assert results[0].chunks == 6 and results[0].view == "fv"
    keys = list(range(205))  # 200..204 have no rows
    entity_df = pl.DataFrame({"k": keys, "event_timestamp": [end] * len(keys)})
    offline = store.get_historical_features(entity_df, ["fv:x", "fv:flag", "fv:label", "od:x2"]).to_polars()
    online = store.get_online_features([{"k": k} for k in keys], ["fv:x", "fv:flag", "fv:label", "od:x2"])
    assert online["k"] == keys
    for col in ("x", "flag", "label", "x2"):
        assert online[col] == offline[col].to_list(), col
    assert online["x"][-1] is None and online["x"][0] is not None
    assert isinstance(online["flag"][0], bool)
    # one entity takes the single-row path; same answer
    one = store.get_online_features([{"k": 3}], ["fv:x"])
    assert one == {"k": [3], "x": [offline["x"][3]]}
    fresh = {f.view: f for f in store.freshness()}["fv"]
    assert fresh.materialized_end == end.replace(tzinfo=UTC).timestamp()
    assert fresh.rows == 200 and fresh.newest_event_ts is not None
    assert store.get_view("fv").freshness == fresh


def test_upserts_only_move_forward_and_incremental(tmp_path: Path, random_source: Path) -> None:
    store = make_store(tmp_path)
    _apply(store, random_source)
    full = store.materialize(T0, T0 + timedelta(days=3))
    before = store.get_online_features([{"k": k} for k in range(200)], ["fv:x"], with_event_time=True)
    # an older window afterwards must not overwrite newer values
    store.materialize(T0, T0 + timedelta(days=1))
    after = store.get_online_features([{"k": k} for k in range(200)], ["fv:x"], with_event_time=True)
    assert after == {**before, "x__age_s": after["x__age_s"]}
    assert full[0].rows == 200
    # incremental continues from the last window end
    res = store.materialize_incremental(end=T0 + timedelta(days=4))
    assert res[0].start == (T0 + timedelta(days=3)).replace(tzinfo=UTC).timestamp()


def test_ttl_at_read_time_and_event_time(tmp_path: Path) -> None:
    src = pl.DataFrame({"k": ["a", "b"], "ev": [T0, T0 + timedelta(hours=3)], "x": [1.0, 2.0]})
    src.write_csv(tmp_path / "s.csv")
    store = make_store(tmp_path)
    store.apply(
        [
            Entity("thing", "k"),
            FeatureView(
                "fv", ["thing"], CsvSource(tmp_path / "s.csv"), "ev", [Field("x")], ttl=timedelta(hours=2)
            ),
        ]
    )
    store.materialize(T0 - timedelta(days=1), T0 + timedelta(days=1))
    now = (T0 + timedelta(hours=4)).replace(tzinfo=UTC).timestamp()
    out = store.get_online_features(
        [{"k": "a"}, {"k": "b"}, {"k": "zz"}],
        ["fv:x"],
        with_event_time=True,
        full_feature_names=True,
        now=now,
    )
    assert out["fv__x"] == [None, 2.0, None]  # a is 4 h old, TTL 2 h
    assert out["fv__x__event_ts"] == [T0.replace(tzinfo=UTC).timestamp(), now - 3600, None]
    assert out["fv__x__age_s"] == [4 * 3600.0, 3600.0, None]


def test_composite_keys_and_bad_requests(tmp_path: Path) -> None:
    src = pl.DataFrame({"a": [1, 1, 2], "b": ["x", "y", "x"], "ev": [T0, T0, T0], "v": [1, 2, 3]})
    src.write_parquet(tmp_path / "s.parquet")
    store = make_store(tmp_path)
    store.apply(
        [
            Entity("pair", ["a", "b"]),
            FeatureView("fv", ["pair"], ParquetSource(tmp_path / "s.parquet"), "ev", [Field("v", "int64")]),
        ]
    )
    with pytest.raises(NotFound, match="materialize it first"):
        store.get_online_features([{"a": 1, "b": "x"}], ["fv:v"])
    store.materialize(T0, T0)
    rows: list[dict[str, object]] = [
        {"a": 1, "b": "y"},
        {"a": "2", "b": "x"},
        {"a": 2, "b": "y"},
    ]  # "2": JSON clients send strings
    assert store.get_online_features(rows, ["fv:v"])["v"] == [2, 3, None]
    with pytest.raises(InvalidInput, match="lacks join key 'b'") as err:
        store.get_online_features([{"a": 1}], ["fv:v"])
    assert err.value.field == "entity_rows"
    with pytest.raises(InvalidInput, match="unknown feature 'nope'"):
        store.get_online_features([{"a": 1, "b": "x"}], ["fv:nope"])
    with pytest.raises(NotFound, match="no feature view named 'other'"):
        store.get_online_features([{"a": 1, "b": "x"}], ["other:v"])
    with pytest.raises(InvalidInput, match="must look like"):
        store.get_online_features([{"a": 1, "b": "x"}], ["fv.v"])


def test_services_wire_the_store(services: Services, tmp_path: Path) -> None:
    pl.DataFrame({"k": [1], "ev": [T0], "x": [0.5]}).write_parquet(tmp_path / "s.parquet")
    services.features.apply(
        [
            Entity("e", "k"),
            FeatureView("fv", ["e"], ParquetSource(tmp_path / "s.parquet"), "ev", [Field("x")]),
        ]
    )
    services.features.materialize_incremental(end=T0 + timedelta(days=1))  # no TTL: from the oldest event
    assert services.features.get_online_features([{"k": 1}], ["fv:x"])["x"] == [0.5]
    assert (services.home.root / "features" / "online.db").exists()
    assert services.features.sample("fv").height == 1
