"""Data and correctness for ``features.py``: the generated source and entity frame, a
brute-force point-in-time answer, and the value-by-value comparison of two results.

The generator is seeded, so both systems read the same files; the reference
shares no code with either system (plain numpy over the sorted source).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _peers

DATA = _peers.ROOT / ".bench" / "data" / "features"
FEATURES = [f"f{i}" for i in range(5)]
VIEW = "stats"
TTL_S = 7 * 86_400
SPAN_S = 30 * 86_400
BASE = "2024-01-01T00:00:00+00:00"
SIZES = {"small": (1_000_000, 100_000, 100_000), "large": (10_000_000, 100_000, 1_000_000)}


@dataclass(frozen=True)
class Dataset:
    size: str
    source: Path
    entity: Path
    source_rows: int
    entities: int
    entity_rows: int


# -- data ----------------------------------------------------------------------------


def generate(size: str, seed: int) -> Dataset:
    """The source and entity frame of one size, written once per (size, seed) and reused."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, entities, m = SIZES[size]
    folder = DATA / f"{size}-seed{seed}"
    ds = Dataset(size, folder / "source.parquet", folder / "entity.parquet", n, entities, m)
    if ds.source.exists() and ds.entity.exists():
        return ds
    folder.mkdir(parents=True, exist_ok=True)
    print(f"[bench] generating {size}: {n:,} source rows, {m:,} entity rows (seed {seed}) …", flush=True)
    rng = np.random.default_rng(seed)
    base_us = int(np.datetime64(BASE.replace("+00:00", ""), "us").astype(np.int64))
    ties = n // 100  # rows that repeat an entity's event time with a later created time
    fresh = n - ties
    cust = rng.integers(0, entities, fresh, dtype=np.int64)
    event_s = rng.integers(0, SPAN_S, fresh, dtype=np.int64)
    created_s = event_s + rng.integers(0, 3_600, fresh, dtype=np.int64)
    twin = rng.choice(fresh, ties, replace=False)
    cust = np.concatenate([cust, cust[twin]])
    event_s = np.concatenate([event_s, event_s[twin]])
    created_s = np.concatenate([created_s, created_s[twin] + rng.integers(1, 600, ties, dtype=np.int64)])
    order = rng.permutation(n)
    utc = pa.timestamp("us", tz="UTC")
    table = pa.table(
        {
            "customer_id": cust[order],
            "event_timestamp": pa.array(base_us + event_s[order] * 1_000_000, utc),
            "created": pa.array(base_us + created_s[order] * 1_000_000, utc),
            **{f: rng.standard_normal(n).round(6) for f in FEATURES},
        }
    )
    pq.write_table(table, ds.source, row_group_size=1_000_000)
    # Entity rows: mostly random (customer, time) pairs over a slightly wider span,
    # 1% exactly on a feature row's time, 0.1% unknown customers.
    e_cust = rng.integers(0, entities, m, dtype=np.int64)
    e_s = rng.integers(-86_400, SPAN_S + 3 * 86_400, m, dtype=np.int64)
    exact = rng.choice(m, m // 100, replace=False)
    picks = rng.integers(0, n, exact.size)
    e_cust[exact] = cust[picks]
    e_s[exact] = event_s[picks]
    unknown = rng.choice(m, m // 1000, replace=False)
    e_cust[unknown] = entities + rng.integers(0, 1000, unknown.size)
    pq.write_table(
        pa.table(
            {
                "row_id": np.arange(m, dtype=np.int64),
                "customer_id": e_cust,
                "event_timestamp": pa.array(base_us + e_s * 1_000_000, utc),
            }
        ),
        ds.entity,
    )
    return ds


# -- correctness -----------------------------------------------------------------------


def reference(ds: Dataset, sample: int, seed: int) -> Any:
    """A brute-force answer for ``sample`` entity rows (polars frame by ``row_id``).

    Per row: among the source rows of its customer with ``event_timestamp <= t``,
    the one with the greatest (event time, created time); null when there is none
    or when it is older than ``t - TTL``. Plain numpy over the whole source sorted
    once, so it shares no code with either system.
    """
    import numpy as np
    import polars as pl

    src = pl.read_parquet(ds.source).sort(["customer_id", "event_timestamp", "created"])
    cust = src["customer_id"].to_numpy()
    ts = src["event_timestamp"].dt.epoch("us").to_numpy()
    values = src.select(FEATURES).to_numpy()
    ent = pl.read_parquet(ds.entity)
    rows = np.sort(np.random.default_rng(seed + 1).choice(ent.height, min(sample, ent.height), replace=False))
    picked = ent[rows]
    e_cust = picked["customer_id"].to_numpy()
    e_ts = picked["event_timestamp"].dt.epoch("us").to_numpy()
    out = np.full((len(rows), len(FEATURES)), np.nan)
    found = np.zeros(len(rows), dtype=bool)
    for i, (c, t) in enumerate(zip(e_cust, e_ts, strict=True)):
        lo, hi = np.searchsorted(cust, c, "left"), np.searchsorted(cust, c, "right")
        candidates = np.nonzero(ts[lo:hi] <= t)[0]
        if candidates.size == 0:
            continue
        best = lo + candidates[-1]  # sorted by (event, created): the last at or before t wins
        if ts[best] >= t - TTL_S * 1_000_000:
            out[i] = values[best]
            found[i] = True
    frame = pl.DataFrame({"row_id": picked["row_id"]}).with_columns(
        [pl.Series(f, out[:, j]).fill_nan(None) for j, f in enumerate(FEATURES)]
    )
    return frame, int(found.sum())


def compare(label: str, expected: Any, actual: Any) -> dict[str, Any]:
    """Value-by-value comparison on the expected frame's rows (joined by ``row_id``).

    ``missing``: expected rows absent from ``actual``; ``mismatched``: rows where
    any feature differs (null equals null only); ``example``: the first such row.
    """
    import polars as pl

    joined = expected.join(actual.select(["row_id", *FEATURES]), on="row_id", how="left", suffix="__b")
    present = actual.select("row_id").with_columns(pl.lit(True).alias("__present"))
    joined = joined.join(present, on="row_id", how="left")
    missing = joined.filter(pl.col("__present").is_null())
    both = joined.filter(pl.col("__present").is_not_null())
    differs = pl.any_horizontal([~pl.col(f).eq_missing(pl.col(f + "__b")) for f in FEATURES])
    bad = both.filter(differs)
    result: dict[str, Any] = {
        "label": label,
        "checked": both.height,
        "missing": missing.height,
        "mismatched": bad.height,
    }
    if bad.height:
        result["example"] = {k: str(v) for k, v in bad.row(0, named=True).items()}
    return result


def window() -> tuple[str, str]:
    """The materialization window: the whole generated span (and a day either side)."""
    from datetime import datetime, timedelta

    start = datetime.fromisoformat(BASE) - timedelta(days=1)
    return start.isoformat(), (start + timedelta(seconds=SPAN_S, days=2)).isoformat()


def lookup_keys(ds: Dataset, n: int, seed: int) -> list[int]:
    import numpy as np

    return [int(k) for k in np.random.default_rng(seed + 2).choice(ds.entities, n, replace=False)]
