"""A model registered with feature views as inputs is scored from entity keys alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from mlbox.appliance import Appliance
from mlbox.services import Services
from mlbox.store.errors import InvalidInput
from tests.driver_stats import apply_driver_stats


@pytest.fixture
def trained(services: Services, tmp_path: Path) -> LinearRegression:
    """One view over drivers 1..10; the newest row per driver is the one serving must use."""
    stats = apply_driver_stats(services, tmp_path, drivers=10, seed=0)
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
