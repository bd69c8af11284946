"""Parquet written atomically, DuckDB queries over files and in-memory frames."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlbox.store import tables


def _frame(n: int, offset: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "k": list(range(offset, offset + n)),
            "x": [i * 0.5 for i in range(n)],
            "s": [f"s{i % 7}" for i in range(n)],
        }
    )


def test_write_parquet_roundtrip_polars_and_arrow(tmp_path: Path) -> None:
    frame = _frame(100)
    path = tables.write_parquet(frame, tmp_path / "deep" / "a.parquet")
    assert path == tmp_path / "deep" / "a.parquet"
    assert pl.read_parquet(path).equals(frame)
    arrow = pa.table({"a": [1, 2], "b": ["x", "y"]})
    tables.write_parquet(arrow, tmp_path / "b.parquet")
    assert pq.read_table(tmp_path / "b.parquet").equals(arrow)
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.parquet", "b.parquet"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tables.write_parquet(_frame(10), tmp_path / "a.parquet")
    # Parquet has no month/day/nano interval type: the writer fails.
    bad = pa.table({"i": pa.array([(1, 2, 3)], pa.month_day_nano_interval())})
    with pytest.raises(pa.ArrowNotImplementedError):
        tables.write_parquet(bad, path)
    assert pl.read_parquet(path).equals(_frame(10))
    assert [p.name for p in tmp_path.iterdir()] == ["a.parquet"]


def test_readers_never_see_half_a_file(tmp_path: Path) -> None:
    """Rewrite a file many times while another thread reads it: every read is whole."""
    path = tables.write_parquet(_frame(20_000), tmp_path / "live.parquet")
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                # One open file: a reader holding it keeps the inode it opened
                # (pyarrow given a path may open it twice, and mix two files).
                with open(path, "rb") as f:
                    table = pq.read_table(f)
                assert table.num_rows in (20_000, 30_000)
                reads += 1
            except BaseException as exc:
                errors.append(exc)
                return

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(30):
            tables.write_parquet(_frame(30_000 if i % 2 else 20_000, offset=i), path)
    finally:
        stop.set()
        t.join()
    assert errors == []
    assert reads > 0
    assert [p.name for p in tmp_path.iterdir()] == ["live.parquet"]


def test_query_over_parquet_with_params(tmp_path: Path) -> None:
    path = tables.write_parquet(_frame(10), tmp_path / "a.parquet")
    out = tables.query(
        "SELECT k, x FROM read_parquet(?) WHERE x > ? AND s = ? ORDER BY k", [str(path), 1.0, "s3"]
    )
    assert out.to_dicts() == [{"k": 3, "x": 1.5}]
    # No params at all works too.
    assert tables.query(f"SELECT COUNT(*) AS n FROM read_parquet('{path}')").item() == 10


def test_query_joins_registered_frames_and_files(tmp_path: Path) -> None:
    path = tables.write_parquet(_frame(5), tmp_path / "facts.parquet")
    names = pl.DataFrame({"k": [0, 2, 4], "label": ["zero", "two", "four"]})
    weights = pa.table({"k": [2, 4], "w": [10.0, 100.0]})
    out = tables.query(
        "SELECT f.k, n.label, f.x * w.w AS y FROM read_parquet(?) f"
        " JOIN names n USING (k) JOIN weights w USING (k) ORDER BY f.k",
        [str(path)],
        frames={"names": names, "weights": weights},
    )
    assert isinstance(out, pl.DataFrame)
    assert out.to_dicts() == [{"k": 2, "label": "two", "y": 10.0}, {"k": 4, "label": "four", "y": 200.0}]


def test_query_connection_is_offline_and_fresh() -> None:
    con = tables.connect(memory_limit="256MB", threads=1)
    try:
        settings = dict(
            con.sql(
                "SELECT name, value FROM duckdb_settings() WHERE name IN"
                " ('autoinstall_known_extensions', 'autoload_known_extensions', 'threads')"
            ).fetchall()
        )
    finally:
        con.close()
    assert settings == {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "threads": "1",
    }
    # Frames registered for one query do not leak into the next one.
    tables.query("SELECT * FROM f", frames={"f": pl.DataFrame({"a": [1]})})
    with pytest.raises(Exception, match="f"):
        tables.query("SELECT * FROM f")


def test_export_writes_a_query_result(tmp_path: Path) -> None:
    src = tables.write_parquet(_frame(50), tmp_path / "src.parquet")
    out = tables.export(
        f"SELECT s, COUNT(*) AS n, SUM(x) AS total FROM read_parquet('{src}') GROUP BY s ORDER BY s",
        tmp_path / "out" / "summary.parquet",
    )
    got = pl.read_parquet(out)
    expected = _frame(50).group_by("s").agg(pl.len().alias("n"), pl.col("x").sum().alias("total")).sort("s")
    assert got["s"].to_list() == expected["s"].to_list()
    assert got["n"].to_list() == expected["n"].to_list()
    assert got["total"].to_list() == pytest.approx(expected["total"].to_list())
    joined = tables.export(
        "SELECT a.v + b.v AS v FROM a JOIN b USING (id)",
        tmp_path / "joined.parquet",
        frames={"a": pl.DataFrame({"id": [1], "v": [2]}), "b": pl.DataFrame({"id": [1], "v": [3]})},
    )
    assert pl.read_parquet(joined)["v"].to_list() == [5]
