"""A small feature view for tests of feature-backed models: ``driver_stats`` (trips, rating)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from mlbox.features import Entity, FeatureView, Field, ParquetSource
from mlbox.services import Services

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def apply_driver_stats(services: Services, folder: Path, *, drivers: int, seed: int) -> pl.DataFrame:
    """Three rows per driver ``1..drivers``, an hour apart from `T0`, applied and materialized;
    returns the source as a frame (the brute-force truth)."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(1, drivers + 1), 3)
    frame = pl.DataFrame(
        {
            "driver_id": ids,
            "event_ts": [T0 + timedelta(hours=int(h)) for h in np.tile([0, 1, 2], drivers)],
            "trips": rng.integers(0, 50, ids.size).astype(np.float64),
            "rating": rng.uniform(3, 5, ids.size),
        }
    )
    frame.write_parquet(folder / "stats.parquet")
    driver = Entity("driver", join_keys=["driver_id"])
    view = FeatureView(
        "driver_stats",
        entities=[driver],
        source=ParquetSource(str(folder / "stats.parquet")),
        timestamp_field="event_ts",
        features=[Field("trips", "float64"), Field("rating", "float64")],
    )
    services.features.apply([driver, view])
    services.features.materialize(T0 - timedelta(days=1), T0 + timedelta(days=1))
    return frame
