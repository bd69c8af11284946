"""``mlbox.feature_store()``: the feature store over the client's home, shared with the services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

import mlbox
from mlbox.features import Entity, FeatureView, Field, ParquetSource
from mlbox.services import Services


def test_the_client_store_and_the_services_see_the_same_definitions_and_values(
    home: Path, services: Services, tmp_path: Path
) -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    pl.DataFrame(
        {"user_id": [1, 1, 2], "ts": [t0, t0 + timedelta(hours=1), t0], "spend": [1.0, 2.0, 5.0]}
    ).write_parquet(tmp_path / "spend.parquet")
    user = Entity("user", join_keys=["user_id"])
    view = FeatureView(
        "spend",
        entities=[user],
        source=ParquetSource(str(tmp_path / "spend.parquet")),
        timestamp_field="ts",
        features=[Field("spend", "float64")],
    )
    store = mlbox.feature_store()
    assert store is mlbox.feature_store()
    store.apply([user, view])
    entity_df = pl.DataFrame({"user_id": [1, 2], "event_timestamp": [t0 + timedelta(minutes=30), t0]})
    frame = store.get_historical_features(entity_df, ["spend:spend"]).to_polars()
    assert frame["spend"].to_list() == [1.0, 5.0]
    store.materialize(t0 - timedelta(days=1), t0 + timedelta(days=1))
    assert [v.name for v in services.features.list_views()] == ["spend"]
    online = services.features.get_online_features([{"user_id": 1}], ["spend:spend"])
    assert online["spend"] == [2.0]
