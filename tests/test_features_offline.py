"""Point-in-time training sets through the public API equal a brute-force reference.

Real files under tmp_path: Parquet, CSV and SQL sources written per example, the
catalog in a real SQLite file, the sources streamed in batches (polars for
Parquet, DuckDB for the rest) into the bucket join (`mlbox.features.pointintime`,
whose own paths `test_features_pointintime.py` covers).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlbox.features import (
    CsvSource,
    Entity,
    FeatureView,
    Field,
    FrameSource,
    OnDemandFeatureView,
    ParquetSource,
    SqlSource,
    retrieval,
)
from mlbox.features.service import FeatureStore
from mlbox.store import Database, Home
from mlbox.store.errors import InvalidInput

T0 = datetime(2024, 3, 1)
CONFIG = {"memory_limit": "256MB", "autoinstall_known_extensions": False, "autoload_known_extensions": False}


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
        batch_rows=st.sampled_from([None, 1, 3]),
        data=st.data(),
    )
    def test_matches_brute_force(
        self,
        rows: list[tuple[int, int]],
        ents: list[tuple[int | None, int]],
        ttl: int | None,
        use_created: bool,
        aware: bool,
        batch_rows: int | None,
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
        if batch_rows is None:
            out = self.store.get_historical_features(entity_df, ["fv:v", "fv:n"]).to_polars()
        else:  # the source in batches of 1 or 3 rows: buckets merged across batches
            plan = self.store.catalog.resolve_features(["fv:v", "fv:n"])
            out, _, _ = retrieval.historical(
                entity_df, plan, timestamp_field="event_timestamp", full_feature_names=False,
                config=CONFIG, batch_rows=batch_rows,
            )  # fmt: skip
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


CHILD = """
import json, sys
from datetime import timedelta
from pathlib import Path
import polars as pl
from mlbox.features import Entity, FeatureView, Field, ParquetSource, SqlSource
from mlbox.features.service import FeatureStore
from mlbox.store import Database, Home

def status(field):  # this process's memory in kB; ru_maxrss would include the parent's
    for line in open("/proc/self/status"):  # high-water mark from before the exec
        if line.startswith(field + ":"):
            return int(line.split()[1])

root, name, kind = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
home = Home(root / f"home-{name}-{kind}").ensure()
store = FeatureStore(Database(home.db_path), home, memory_limit="64MB", threads=2)
path = root / f"{name}.parquet"
source = ParquetSource(path) if kind == "parquet" else SqlSource(f"SELECT * FROM read_parquet('{path}')")
feats = [Field("f1"), Field("f2"), Field("f3")]
store.apply([Entity("e", "k"), FeatureView("big", ["e"], source, "ts", feats, ttl=timedelta(minutes=10))])
ent = pl.read_parquet(root / "ent.parquet")
before = status("VmRSS")
out = store.get_historical_features(ent, ["big:f1", "big:f2", "big:f3"]).to_polars()
peak = status("VmHWM")
out.write_parquet(root / f"out-{name}-{kind}.parquet")
print(json.dumps({"grew_mb": (peak - before) / 1024}))
"""


def test_out_of_core_memory_does_not_grow_with_the_source(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """A store with a 64 MB memory limit joins 1M and 4M source rows (40 and 160 MB as
    columns; neither fits, so both stream in batches of ~100k rows), each in a child
    process, read as Parquet and through a SQL source. The child's peak RSS grows by
    about as much for 4M rows as for 1M: memory is bounded by the limit, not the source.
    Every answer equals polars' in-memory asof join (the sources have no ties)."""
    keys = 50_000
    con = duckdb.connect()
    for name, n in (("s1m", 1_000_000), ("s4m", 4_000_000)):
        con.execute(
            f"""COPY (SELECT (i % {keys})::BIGINT AS k,
                TIMESTAMP '2024-01-01' + to_seconds(i // {keys} * 60 + (hash(i) % 30)::BIGINT) AS ts,
                (hash(i * 3) % 1000000)::DOUBLE AS f1, random() AS f2, random() AS f3
                FROM range({n}) r(i)) TO '{tmp_path}/{name}.parquet' (FORMAT parquet, ROW_GROUP_SIZE 100000)"""
        )
    ent = con.sql(
        f"""SELECT (hash(i * 7) % {keys + 1000})::BIGINT AS k,
            TIMESTAMP '2024-01-01' + to_seconds((hash(i * 11) % 3600 * 4)::BIGINT) AS event_timestamp
            FROM range(150000) r(i)"""
    ).pl()
    con.close()
    ent.write_parquet(tmp_path / "ent.parquet")
    grew: dict[tuple[str, str], float] = {}
    for name in ("s1m", "s4m"):
        src = pl.read_parquet(tmp_path / f"{name}.parquet").sort("ts")
        ref = (
            ent.with_row_index("i")
            .sort("event_timestamp")
            .join_asof(
                src, left_on="event_timestamp", right_on="ts", by="k", strategy="backward",
                check_sortedness=False,
            )
            .with_columns(
                pl.when(pl.col("event_timestamp") - pl.col("ts") <= timedelta(minutes=10)).then(pl.col(f)).alias(f)
                for f in ("f1", "f2", "f3")
            )
            .sort("i")
        )  # fmt: skip
        del src
        for kind in ("parquet", "sql"):
            child = subprocess.run(
                [sys.executable, "-c", CHILD, str(tmp_path), name, kind],
                env=subprocess_env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert child.returncode == 0, child.stderr[-3000:]
            grew[name, kind] = json.loads(child.stdout.strip().splitlines()[-1])["grew_mb"]
            out = pl.read_parquet(tmp_path / f"out-{name}-{kind}.parquet")
            assert out.select("k", "event_timestamp").equals(ent)  # every row once, in order
            for f in ("f1", "f2", "f3"):
                assert out[f].to_list() == ref[f].to_list(), (name, kind, f)
            assert 0 < out["f1"].null_count() < out.height  # some rows match, some are past the TTL
    for kind in ("parquet", "sql"):  # 3M more rows (120 MB) cost less than a third of that
        assert grew["s4m", kind] - grew["s1m", kind] < 40, grew


def brute_force(
    ent: pl.DataFrame, src: pl.DataFrame, keys: list[str], feats: list[str], ttl: timedelta
) -> pl.DataFrame:
    """Per entity row, the source row with its keys (no NULLs) and the greatest (ev, cr)
    at or before its time (NULL cr first), nulled past the TTL: a join and a sort."""
    e = ent.with_row_index("__i")
    best = (
        e.join(src, on=keys, how="inner")
        .filter(pl.col("ev") <= pl.col("event_timestamp"))
        .sort(["__i", "ev", "cr"], nulls_last=False)
        .unique("__i", keep="last")
        .with_columns(
            pl.when(pl.col("ev") >= pl.col("event_timestamp") - ttl).then(pl.col(f)).alias(f) for f in feats
        )
    )
    return e.join(best.select("__i", *feats), on="__i", how="left").sort("__i").select(feats)


@pytest.mark.parametrize("keys", ["string", "int_and_string", "sparse_int"])
def test_every_source_kind_and_key_kind_matches_brute_force(tmp_path: Path, keys: str) -> None:
    """The same random rows as a Parquet file, a folder of Parquet files whose types
    differ (polars cannot read it as one: DuckDB's union_by_name does), CSV and SQL;
    string, two-column and sparse integer keys (a hash join, not a table); NULL keys,
    events and created times on both sides; duplicate and NULL-timed entity rows."""
    rng = np.random.default_rng(len(keys))
    n = 3000
    cust = rng.integers(0, 40, n)
    frame = pl.DataFrame(
        {
            "ev": [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 600, n)],
            "cr": [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 900, n)],
            "x": rng.normal(size=n),
            "y": rng.integers(-5, 5, n),
            "s": [f"v{i}" for i in range(n)],
        }
    )
    key_cols = {
        "string": {"c": [f"c{c}" for c in cust]},
        "int_and_string": {"a": cust % 7, "b": [f"b{c % 5}" for c in cust]},
        "sparse_int": {"c": cust * 10**12 - 3},
    }[keys]
    names = list(key_cols)
    frame = pl.DataFrame(key_cols).hstack(frame)
    nulls = rng.random(n)  # a few NULL keys, events and created times
    frame = frame.with_columns(
        pl.when(pl.Series(nulls < 0.02)).then(None).otherwise(pl.col(names[0])).alias(names[0]),
        pl.when(pl.Series((nulls > 0.02) & (nulls < 0.04))).then(None).otherwise(pl.col("ev")).alias("ev"),
        pl.when(pl.Series(nulls > 0.9)).then(None).otherwise(pl.col("cr")).alias("cr"),
    ).unique([*names, "ev", "cr"], keep="first", maintain_order=True)  # no full ties: either row is right
    ent = (
        frame.select(names)
        .sample(400, with_replacement=True, seed=1)
        .with_columns(
            pl.Series(
                "event_timestamp", [T0 + timedelta(minutes=int(m)) for m in rng.integers(-30, 700, 400)]
            )
        )
    )
    ent = pl.concat([ent, ent.head(20)]).with_columns(  # duplicates; NULL times match nothing
        pl.when(pl.int_range(pl.len()) % 50 == 7)
        .then(None)
        .otherwise(pl.col("event_timestamp"))
        .alias("event_timestamp")
    )
    expected = brute_force(ent, frame, names, ["x", "y", "s"], timedelta(minutes=90))
    assert 0 < expected["x"].null_count() < ent.height

    folder = tmp_path / "folder"
    folder.mkdir()
    frame.write_parquet(tmp_path / "one.parquet")
    frame.head(1000).write_parquet(folder / "a.parquet")
    frame.slice(1000).with_columns(pl.col("y").cast(pl.Int16)).write_parquet(folder / "b.parquet")
    frame.write_csv(tmp_path / "rows.csv")
    sources = {
        "parquet": ParquetSource(tmp_path / "one.parquet"),
        "folder": ParquetSource(folder),
        "csv": CsvSource(tmp_path / "rows.csv"),
        "sql": SqlSource(f"SELECT * FROM read_parquet('{tmp_path / 'one.parquet'}') WHERE true"),
    }
    store = make_store(tmp_path)
    fields = [Field("x"), Field("y", "int64"), Field("s", "string")]
    store.apply(
        [Entity("e", names)]
        + [FeatureView(kind, ["e"], source, "ev", fields, created_timestamp_field="cr", ttl=timedelta(minutes=90))
           for kind, source in sources.items()]
    )  # fmt: skip
    for kind in sources:
        for batch_rows in (None, 64):
            plan = store.catalog.resolve_features([f"{kind}:x", f"{kind}:y", f"{kind}:s"])
            out, _, _ = retrieval.historical(
                ent, plan, timestamp_field="event_timestamp", full_feature_names=False, config=CONFIG,
                batch_rows=batch_rows,
            )  # fmt: skip
            assert out.select(*names, "event_timestamp").equals(ent)
            assert out.select("x", "y", "s").equals(expected), (kind, batch_rows)
            assert out.schema["y"] == pl.Int64 and out.schema["s"] == pl.String


def test_a_value_that_does_not_fit_its_declared_dtype_names_the_view(tmp_path: Path) -> None:
    """int8 accepts a BIGINT column at apply time; a value past 127 fails the read, as
    one InvalidInput naming the view (polars fails, DuckDB's cast says why)."""
    pl.DataFrame({"u": [1, 2], "ts": [T0, T0], "x": [5, 1000]}).write_parquet(tmp_path / "s.parquet")
    store = make_store(tmp_path)
    view = FeatureView("fv", ["user"], ParquetSource(tmp_path / "s.parquet"), "ts", [Field("x", "int8")])
    store.apply([Entity("user", "u"), view])
    with pytest.raises(InvalidInput, match=r"feature view 'fv' v1: cannot read source: .*1000") as err:
        store.get_historical_features(pl.DataFrame({"u": [1], "event_timestamp": [T0]}), ["fv:x"])
    assert err.value.field == "source"


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
