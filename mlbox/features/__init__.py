"""Feature store: definitions, point-in-time training sets, online features.

Definitions are importable from here without loading polars or DuckDB::

    from mlbox.features import Entity, FeatureView, Field, ParquetSource

    driver = Entity("driver", join_keys=["driver_id"])
    stats = FeatureView(
        "driver_stats", entities=[driver], source=ParquetSource("stats.parquet"),
        timestamp_field="event_ts", features=[Field("trips", "int64")], ttl=timedelta(days=2),
    )
    services.features.apply([driver, stats])
    job = services.features.get_historical_features(entity_df, ["driver_stats:trips"])
    frame = job.to_polars()
"""

from mlbox.features.definitions import (
    CsvSource,
    Entity,
    FeatureView,
    Field,
    FrameSource,
    OnDemandFeatureView,
    ParquetSource,
    SqlSource,
)
from mlbox.features.loader import load_definitions

__all__ = [
    "CsvSource",
    "Entity",
    "FeatureView",
    "Field",
    "FrameSource",
    "OnDemandFeatureView",
    "ParquetSource",
    "SqlSource",
    "load_definitions",
]
