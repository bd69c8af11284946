"""A model registered with feature views as inputs is scored from entity keys alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LinearRegression

from mlbox.appliance import Appliance
from mlbox.features import Entity, FeatureView, Field, ParquetSource
from mlbox.services import Services
from mlbox.store.errors import InvalidInput

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def trained(services: Services, tmp_path: Path) -> LinearRegression:
    """Two views over one entity; the newest row per driver is the one serving must use."""
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(1, 11), 3)
    stats = pl.DataFrame(
        {
            "driver_id": ids,
            "event_ts": [T0 + timedelta(hours=int(h)) for h in np.tile([0, 1, 2], 10)],
            "trips": rng.integers(0, 50, ids.size).astype(np.float64),
            "rating": rng.uniform(3, 5, ids.size),
        }
    )
    stats.write_parquet(tmp_path / "stats.parquet")
    driver = Entity("driver", join_keys=["driver_id"])
    view = FeatureView(
        "driver_stats",
        entities=[driver],
        source=ParquetSource(str(tmp_path / "stats.parquet")),
        timestamp_field="event_ts",
        features=[Field("trips", "float64"), Field("rating", "float64")],
    )
    services.features.apply([driver, view])
    services.features.materialize(T0 - timedelta(days=1), T0 + timedelta(days=1))
    x = stats.select("rating", "trips").to_numpy()  # the model's column order differs from the view's
    model = LinearRegression().fit(x, x @ np.array([2.0, 0.5]) + 1)
    services.registry.register(
        "eta", model=model, example_input=x[:3], features=["driver_stats:rating", "driver_stats:trips"]
    )
    services.registry.set_alias("eta", "champion", 1)
    return model


@pytest.fixture
def appliance(services: Services, trained: LinearRegression) -> Iterator[Appliance]:
    app = Appliance(replace(services, settings=replace(services.settings, port=0)))
    app.start_loops()
    app.start_http()
    assert app.serving.wait_ready(30)
    yield app
    app.stop()


def test_entity_keys_in_features_looked_up_out(
    services: Services, trained: LinearRegression, appliance: Appliance
) -> None:
    online = services.features.get_online_features(
        [{"driver_id": 3}, {"driver_id": 7}], ["driver_stats:rating", "driver_stats:trips"]
    )
    expected = trained.predict(np.column_stack([online["rating"], online["trips"]]))
    r = httpx.post(
        f"{appliance.url}/api/v1/models/eta@champion/predict",
        json={"dataframe_records": [{"driver_id": 3}, {"driver_id": 7}]},
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], expected)
    r = httpx.post(
        f"{appliance.url}/v2/models/eta/infer",
        json={"inputs": [{"name": "driver_id", "shape": [1], "datatype": "INT64", "data": [7]}]},
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["outputs"][0]["data"], expected[1:])


def test_a_request_without_join_keys_is_refused_naming_the_problem(appliance: Appliance) -> None:
    r = httpx.post(f"{appliance.url}/api/v1/models/eta/predict", json={"instances": [[1.0, 2.0]]})
    assert r.status_code == 422, r.text
    assert "join keys" in r.json()["error"]
    r = httpx.post(
        f"{appliance.url}/api/v1/models/eta/predict", json={"dataframe_records": [{"rider_id": 1}]}
    )
    assert r.status_code == 422, r.text
    assert "driver_id" in r.json()["error"]


def test_feature_references_are_checked_at_registration(services: Services) -> None:
    with pytest.raises(InvalidInput) as info:
        services.registry.register(
            "m", model=LinearRegression().fit([[1.0]], [1.0]), features=["driver_stats:rating", "oops"]
        )
    assert info.value.field == "features[1]"
