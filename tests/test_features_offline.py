"""Point-in-time training sets: DuckDB's answer equals a brute-force reference.

Real files under tmp_path: Parquet sources written per example, the catalog in a
real SQLite file, DuckDB reading the files directly.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlbox.features import Entity, FeatureView, Field, FrameSource, OnDemandFeatureView, ParquetSource
from mlbox.features.service import FeatureStore
from mlbox.store import Database, Home

T0 = datetime(2024, 3, 1)


def make_store(root: Path, **kwargs: object) -> FeatureStore:
    home = Home(root / "home").ensure()
    return FeatureStore(Database(home.db_path), home, **kwargs)  # type: ignore[arg-type]


def reference(
    source: list[tuple[int, int, int, float]],
    entities: list[tuple[int | None, int]],
    ttl: int | None,
    use_created: bool,
) -> list[float | None]:
    """For each entity row: the value of the newest source row at or before its time
    (ties: newest created), or None when there is none or it is older than the TTL."""
    out: list[float | None] = []
    for key, t in entities:
        cands = [r for r in source if r[0] == key and r[1] <= t]
        if not cands:
            out.append(None)
            continue
        best = max(cands, key=lambda r: (r[1], r[2] if use_created else 0))
        out.append(None if ttl is not None and t - best[1] > ttl else best[3])
    return out


source_rows = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 20)),  # key, event minute (small range: many ties)
    min_size=0,
    max_size=40,
)
entity_rows = st.lists(
    st.tuples(st.one_of(st.integers(0, 4), st.none()), st.integers(-2, 26)), min_size=1, max_size=30
)


class TestPointInTime:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        rows=source_rows,
        ents=entity_rows,
        ttl=st.one_of(st.none(), st.integers(1, 4)),
        use_created=st.booleans(),
        aware=st.booleans(),
        data=st.data(),
    )
    def test_matches_brute_force(
        self,
        rows: list[tuple[int, int]],
        ents: list[tuple[int | None, int]],
        ttl: int | None,
        use_created: bool,
        aware: bool,
        data: st.DataObject,
    ) -> None:
        if not use_created:  # without a created time, ties on event time have no defined winner
            seen: set[tuple[int, int]] = set()
            rows = [r for r in rows if not (r in seen or seen.add(r))]  # type: ignore[func-returns-value]
        # Created times: distinct, and often later than the event (late-arriving rows).
        created = data.draw(st.permutations(range(len(rows)))) if rows else []
        if rows:  # aim half the entity rows at the source's own keys and event times (ties, TTL edges)
            aimed = st.tuples(
                st.sampled_from([r[0] for r in rows]),
                st.sampled_from([r[1] + d for r in rows for d in (0, 1, 2)]),
            )
            ents = ents + data.draw(st.lists(aimed, max_size=25))
        source = [
            (k, ev, ev + 3 * c - 10, float(i))
            for i, ((k, ev), c) in enumerate(zip(rows, created, strict=True))
        ]
        tz = UTC if aware else None
        base = T0.replace(tzinfo=tz)
        root = Path(tempfile.mkdtemp(dir=self.tmp))
        frame = pl.DataFrame(
            {
                "k": [r[0] for r in source],
                "ev": [base + timedelta(minutes=r[1]) for r in source],
                "cr": [base + timedelta(minutes=r[2]) for r in source],
                "v": [r[3] for r in source],
                "n": [int(r[3]) for r in source],
            },
            schema={
                "k": pl.Int64,
                "ev": pl.Datetime("us", tz),
                "cr": pl.Datetime("us", tz),
                "v": pl.Float64,
                "n": pl.Int32,
            },
        )
        frame.write_parquet(root / "src.parquet")
        view = FeatureView(
            "fv",
            ["e"],
            ParquetSource(root / "src.parquet"),
            "ev",
            [Field("v", "float64"), Field("n", "int64")],
            created_timestamp_field="cr" if use_created else None,
            ttl=None if ttl is None else timedelta(minutes=ttl),
        )
        self.store.apply([Entity("e", ["k"]), view])
        entity_df = pl.DataFrame(
            {"k": [e[0] for e in ents], "event_timestamp": [base + timedelta(minutes=e[1]) for e in ents]},
            schema={"k": pl.Int64, "event_timestamp": pl.Datetime("us", tz)},
        ).with_row_index("row_id")
        out = self.store.get_historical_features(entity_df, ["fv:v", "fv:n"]).to_polars()
        expected = reference(source, ents, ttl, use_created)
        assert out["row_id"].to_list() == list(range(len(ents)))  # every row once, input order
        assert out.columns == ["row_id", "k", "event_timestamp", "v", "n"]
        assert out["v"].to_list() == expected
        assert out["n"].to_list() == [None if x is None else int(x) for x in expected]
        assert out.schema["n"] == pl.Int64

    @pytest.fixture(autouse=True)
    def _store(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.store = make_store(tmp_path)


def test_example_ties_ttl_late_rows_pandas_and_full_names(tmp_path: Path) -> None:
    src = pl.DataFrame(
        {
            "driver_id": [1, 1, 1, 2],
            "ts": [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=1), T0],
            # the second hour-1 row arrived later: it wins the tie
            "created": [T0, T0 + timedelta(hours=3), T0 + timedelta(hours=2), T0],
            "trips": [10, 11, 12, 20],
        }
    )
    src.write_parquet(tmp_path / "s.parquet")
    store = make_store(tmp_path)
    store.apply(
        [
            Entity("driver", "driver_id"),
            FeatureView(
                "stats", ["driver"], ParquetSource(tmp_path / "s.parquet"), "ts", [Field("trips", "int64")],
                created_timestamp_field="created", ttl=timedelta(hours=2),
            ),
            OnDemandFeatureView("derived", ["stats"], [Field("double_trips", "float64")], {"double_trips": "trips * 2"}),
        ]
    )  # fmt: skip
    entity_df = pd.DataFrame(
        {
            "driver_id": [1, 2, 1, 7, 1],
            "event_timestamp": pd.to_datetime(
                [T0 + timedelta(hours=1), T0 + timedelta(hours=3), T0, T0, T0 + timedelta(minutes=59)]
            ),
        }
    )
    job = store.get_historical_features(
        entity_df, ["stats:trips", "derived:double_trips"], full_feature_names=True
    )
    out = job.to_pandas()
    assert list(out.columns) == ["driver_id", "event_timestamp", "stats__trips", "derived__double_trips"]
    got = job.to_polars()
    assert got["stats__trips"].to_list() == [11, None, 10, None, 10]
    assert got["derived__double_trips"].to_list() == [22.0, None, 20.0, None, 20.0]
    record = store.training_set(job.training_set_id)
    assert record.features == ["stats:trips@v1", "derived:double_trips@v1"]
    assert {(v.name, v.version) for v in record.views} == {("stats", 1), ("derived", 1)}
    assert record.row_count == 5 and record.entity_rows == 5
    assert [t.id for t in store.training_sets(view="stats")] == [job.training_set_id]
    assert store.training_sets(view="other") == []


def test_two_views_and_frame_source(tmp_path: Path) -> None:
    a = pl.DataFrame({"u": [1, 2], "ts": [T0, T0], "x": [1.5, 2.5]})
    b = pl.DataFrame({"u": [1, 2], "ts": [T0 + timedelta(hours=1), T0], "y": ["p", "q"]})
    store = make_store(tmp_path)
    store.apply(
        [
            Entity("user", "u"),
            FeatureView("a", ["user"], FrameSource(a), "ts", [Field("x")]),
            FeatureView("b", ["user"], FrameSource(b), "ts", [Field("y", "string")]),
        ]
    )
    ent = pl.DataFrame({"u": [1, 2, 1], "event_timestamp": [T0, T0, T0 + timedelta(hours=2)]})
    out = store.get_historical_features(ent, ["a:*", "b:y"]).to_polars()
    assert out["x"].to_list() == [1.5, 2.5, 1.5]
    assert out["y"].to_list() == [None, "q", "p"]
    # the frame was snapshotted: later changes to the frame object cannot reach the view
    assert list((tmp_path / "home" / "features" / "frames").glob("*.parquet"))


def test_out_of_core_with_a_64mb_memory_limit(tmp_path: Path) -> None:
    """2.5M source rows (~100 MB of payload) joined by DuckDB under a 64 MB limit, so the
    ASOF join must spill; checked against polars' in-memory asof join."""
    n, keys = 2_500_000, 50_000
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT (i % {keys})::BIGINT AS k,
            TIMESTAMP '2024-01-01' + to_seconds(i // {keys} * 60 + (hash(i) % 30)::BIGINT) AS ts,
            (hash(i * 3) % 1000000)::DOUBLE AS f1, random() AS f2, random() AS f3
            FROM range({n}) r(i)) TO '{tmp_path}/big.parquet' (FORMAT parquet, ROW_GROUP_SIZE 100000)"""
    )
    ent = con.sql(
        f"""SELECT (hash(i * 7) % {keys + 1000})::BIGINT AS k,
            TIMESTAMP '2024-01-01' + to_seconds((hash(i * 11) % 3600)::BIGINT) AS event_timestamp
            FROM range(150000) r(i)"""
    ).pl()
    con.close()
    store = make_store(tmp_path, memory_limit="64MB", threads=2)
    store.apply(
        [
            Entity("e", "k"),
            FeatureView(
                "big", ["e"], ParquetSource(tmp_path / "big.parquet"), "ts",
                [Field("f1"), Field("f2"), Field("f3")], ttl=timedelta(minutes=10),
            ),
        ]
    )  # fmt: skip
    out = store.get_historical_features(ent, ["big:f1", "big:f2", "big:f3"]).to_polars()
    assert out.height == ent.height
    assert out.select("k", "event_timestamp").equals(ent)
    src = pl.read_parquet(tmp_path / "big.parquet", columns=["k", "ts", "f1"]).sort("ts")
    ref = (
        ent.with_row_index("i")
        .sort("event_timestamp")
        .join_asof(
            src, left_on="event_timestamp", right_on="ts", by="k", strategy="backward", check_sortedness=False
        )
        .with_columns(
            pl.when(pl.col("event_timestamp") - pl.col("ts") <= timedelta(minutes=10))
            .then(pl.col("f1"))
            .alias("f1")
        )
        .sort("i")
    )
    assert out["f1"].to_list() == ref["f1"].to_list()
    assert out["f1"].null_count() < out.height  # the data does match somewhere


def test_versions_keep_old_training_sets_reproducible(tmp_path: Path) -> None:
    src = pl.DataFrame({"u": [1, 1], "ts": [T0, T0 + timedelta(hours=5)], "x": [1.0, 2.0], "z": [5, 6]})
    src.write_parquet(tmp_path / "s.parquet")
    store = make_store(tmp_path)
    ent = pl.DataFrame({"u": [1, 1], "event_timestamp": [T0 + timedelta(hours=1), T0 + timedelta(hours=6)]})
    v1 = FeatureView(
        "fv", ["user"], ParquetSource(tmp_path / "s.parquet"), "ts", [Field("x")], ttl=timedelta(hours=2)
    )
    first = store.apply([Entity("user", "u"), v1])
    assert [(c.name, c.action, c.version) for c in first.changes] == [
        ("user", "created", None),
        ("fv", "created", 1),
    ]
    job1 = store.get_historical_features(ent, ["fv:x"])
    assert job1.to_polars()["x"].to_list() == [1.0, 2.0]

    again = store.apply([Entity("user", "u"), v1])
    assert not again.changed
    v2 = FeatureView("fv", ["user"], ParquetSource(tmp_path / "s.parquet"), "ts", [Field("x"), Field("z", "int64")],
                     ttl=timedelta(minutes=30))  # fmt: skip
    second = store.apply([v2])
    assert [(c.action, c.version) for c in second.changes] == [("updated", 2)]
    assert second.changes[0].hash != first.changes[1].hash
    now = store.get_historical_features(ent, ["fv:x"]).to_polars()
    assert now["x"].to_list() == [None, None]  # the new 30-minute TTL

    record = store.training_set(job1.training_set_id)
    assert record.features == ["fv:x@v1"]
    redo = store.get_historical_features(ent, record.features)
    assert redo.to_polars().equals(job1.to_polars())
    assert redo.training_set.entity_hash == record.entity_hash
    by_hash = store.get_historical_features(ent, [f"fv:x@{first.changes[1].hash}"]).to_polars()
    assert by_hash.equals(job1.to_polars())
    info = store.get_view("fv")
    assert info.version == 2 and [v.version for v in info.versions] == [1, 2]
    assert [f.name for f in store.get_view("fv", 1).features] == ["x"]
