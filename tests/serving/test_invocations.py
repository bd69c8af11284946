"""MLflow's ``POST /invocations`` over a real socket: the bodies MLflow's and SageMaker's clients send
(``dataframe_split`` as pandas writes it, ``dataframe_records``, ``instances``, ``inputs``, CSV), for
the model a setting names or the one served by alias; 404/409 saying how to choose otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from mlbox.api.app import create_app
from mlbox.registry.service import RegistryService
from mlbox.services import Services
from mlbox.serving.config import ServingSettings
from mlbox.serving.invocations import choose_model
from mlbox.serving.service import ServingService
from mlbox.store.errors import Conflict, InvalidInput, NotFound
from tests.helpers import error
from tests.serving.server import FAST, TOKEN, start_serving, uvicorn_server


def _http(services: Services, serving: ServingService) -> Iterator[httpx.Client]:
    app = create_app(dataclasses.replace(services, serving=serving), token=TOKEN)
    with uvicorn_server(app) as url, httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
        yield client


@pytest.fixture
def http(services: Services, serving: ServingService) -> Iterator[httpx.Client]:
    """No token: /invocations is an open scoring route like /predict."""
    yield from _http(services, serving)


def test_invocations_scores_mlflow_bodies_with_the_one_served_model(
    http: httpx.Client, data: dict[str, Any]
) -> None:
    x = data["x"][:4]
    expected = data["gbc"].predict(x).tolist()
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(20)])
    split = frame.to_dict(orient="split")  # columns, index and data, as MLflow's client sends it
    bodies: list[dict[str, Any]] = [
        {"dataframe_split": split},
        {"dataframe_split": {"columns": split["columns"], "data": split["data"]}, "params": {}},
        {"dataframe_records": frame.to_dict(orient="records")},
        {"instances": x.tolist()},
        {"inputs": x.tolist()},
    ]
    for body in bodies:
        r = http.post("/invocations", json=body)
        assert r.status_code == 200, (list(body), r.text)
        assert r.json() == {"predictions": expected}
        assert r.headers["mlbox-model-version"] == "1"
    r = http.post("/invocations", content=frame.to_csv(index=False), headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": expected}
    # the same status rule as every scoring route
    error(http.post("/invocations", content=b'{"instances": [1,'), 400, "body")
    error(http.post("/invocations", json={"instances": []}), 422, "instances")
    error(http.post("/invocations", json={"instances": [[1.0, 2.0]]}), 422)


def test_invocations_needs_one_model_or_the_setting(
    services: Services, registry: RegistryService, gbc: Any, home: Path, data: dict[str, Any]
) -> None:
    registry.register("lr", model=data["lr"], example_input=data["x"][:3])
    registry.set_alias("lr", "champion", 1)
    x = data["x"][:3]
    for fast_path in (True, False):
        serving = start_serving(registry, home, replace(FAST, fast_path=fast_path))
        try:
            for client in _http(services, serving):
                body = error(client.post("/invocations", json={"instances": x.tolist()}), 409, "model")
                assert "MLBOX_SERVING_INVOCATIONS_MODEL" in body["error"] and "gbc, lr" in body["error"]
        finally:
            serving.close()
        chosen = replace(FAST, fast_path=fast_path, invocations_model="lr@champion")
        serving = start_serving(registry, home, chosen)
        try:
            for client in _http(services, serving):
                r = client.post("/invocations", json={"instances": x.tolist()})
                assert r.json() == {"predictions": data["lr"].predict(x).tolist()}, r.text
        finally:
            serving.close()


def test_invocations_with_no_model_served_is_404_saying_how_to_serve_one(
    services: Services, registry: RegistryService, home: Path
) -> None:
    serving = start_serving(registry, home)
    try:
        for client in _http(services, serving):
            body = error(client.post("/invocations", json={"instances": [[1.0]]}), 404, "model")
            assert "alias" in body["error"]
    finally:
        serving.close()


def test_choose_model_prefers_the_setting_then_the_champion_of_the_one_aliased_model() -> None:
    assert choose_model("a@b", {"x@champion": 1, "y@champion": 2}) == "a@b"
    assert choose_model("", {"x@champion": 1, "x@challenger": 2, "x/3": 3, "y/1": 1}) == "x@champion"
    assert choose_model("", {"x@prod": 2, "x@stable": 2}) == "x@prod"
    assert choose_model("", {}, ["x@champion"]) == "x@champion"  # failed: scoring it says why
    with pytest.raises(NotFound):
        choose_model("", {"x/1": 1, "y": 2})
    with pytest.raises(Conflict):
        choose_model("", {"x@champion": 1, "y@champion": 2})
    with pytest.raises(Conflict):
        choose_model("", {"x@prod": 1, "x@canary": 2})


def test_the_invocations_setting_is_a_model_reference() -> None:
    env = {"MLBOX_SERVING_INVOCATIONS_MODEL": "models:/churn@champion"}
    assert ServingSettings.from_env(env).invocations_model == "churn@champion"
    with pytest.raises(InvalidInput) as caught:
        ServingSettings.from_env({"MLBOX_SERVING_INVOCATIONS_MODEL": "no such model"})
    assert caught.value.field == "MLBOX_SERVING_INVOCATIONS_MODEL"
