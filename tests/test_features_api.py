"""The feature store's HTTP routes: in process over the real app, and once over a real socket.

Definitions come from the same YAML and Parquet source as the CLI tests
(`tests.test_features_cli.write_source`), with event times relative to now
so online reads see fresh values. Bad bodies answer 4xx JSON naming the field; deleting
answers 404/409 JSON naming the field.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.features import Field, OnDemandFeatureView
from mlbox.services import Services
from tests.helpers import MLBOX, error, stop, wait_announced
from tests.test_features_cli import base_time, write_source

TOKEN = "test-token-features"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://127.0.0.1:5151"
PREFIX = "/api/v1/features"
REFS = ["stats:spend", "stats:visits"]


@pytest.fixture
def t0() -> dt.datetime:
    return base_time()


@pytest.fixture
def store(services: Services, tmp_path: Path, t0: dt.datetime) -> Services:
    """Definitions applied; nothing materialized yet."""
    folder = tmp_path / "repo"
    folder.mkdir()
    services.features.apply(write_source(folder, t0))
    return services


@pytest.fixture
def client(store: Services) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(store, token=TOKEN), base_url=BASE) as client:
        client.headers.update(AUTH)
        yield client


def materialize(client: TestClient[Litestar], t0: dt.datetime) -> list[dict[str, Any]]:
    body = {"start": (t0 - dt.timedelta(days=6)).isoformat(), "end": (t0 + dt.timedelta(hours=4)).isoformat()}
    response = client.post(f"{PREFIX}/materialize", json=body)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()
    return results


def test_views_entities_and_materialize(client: TestClient[Litestar], t0: dt.datetime) -> None:
    (view,) = client.get(f"{PREFIX}/views").json()
    assert view["name"] == "stats" and view["version"] == 1
    assert view["freshness"] is None or view["freshness"]["materialized_end"] is None
    assert client.get(f"{PREFIX}/entities").json()[0]["join_keys"] == ["customer_id"]
    (result,) = materialize(client, t0)
    assert result["view"] == "stats" and result["rows"] == 3  # customers 1, 2 and 7
    one = client.get(f"{PREFIX}/views/stats").json()
    assert one["freshness"]["materialized_end"] == pytest.approx(result["end"])
    assert one["freshness"]["rows"] == 3
    assert client.get(f"{PREFIX}/views/stats", params={"version": 1}).json()["hash"] == view["hash"]
    again = client.post(f"{PREFIX}/materialize", json={"incremental": True, "views": ["stats"]})
    assert again.status_code == 200, again.text
    assert again.json()[0]["start"] == pytest.approx(result["end"])


def test_online_values_columns_and_event_times(client: TestClient[Litestar], t0: dt.datetime) -> None:
    materialize(client, t0)
    response = client.post(
        f"{PREFIX}/online", json={"features": REFS, "entities": {"customer_id": [1, 2, 3, 7]}}
    )
    assert response.status_code == 200, response.text
    values = response.json()["values"]
    assert values == {
        "customer_id": [1, 2, 3, 7],
        "spend": [3.5, 2.0, None, None],  # the tie's later-created row; 3 unknown; 7 past its TTL
        "visits": [3, 4, None, None],
    }
    many = list(range(100))  # past INLINE_ROWS: answered from a worker thread, same values
    big = client.post(f"{PREFIX}/online", json={"features": REFS, "entities": {"customer_id": many}})
    assert big.status_code == 200, big.text
    spend = big.json()["values"]["spend"]
    assert spend[1:3] == [3.5, 2.0] and sum(v is not None for v in spend) == 2
    stamped = client.post(
        f"{PREFIX}/online",
        json={"features": ["stats:spend"], "entity_rows": [{"customer_id": 1}], "with_event_time": True},
    ).json()["values"]
    assert stamped["spend__event_ts"] == [pytest.approx((t0 + dt.timedelta(hours=2)).timestamp())]
    assert stamped["spend__age_s"][0] > 0


def test_online_in_feast_response_shape(client: TestClient[Litestar], t0: dt.datetime) -> None:
    materialize(client, t0)
    body = {
        "features": REFS,
        "entities": {"customer_id": [1, 3]},
        "full_feature_names": False,
        "response": "feast",
    }
    answer = client.post(f"{PREFIX}/online", json=body).json()
    assert answer["metadata"]["feature_names"] == ["customer_id", "spend", "visits"]
    key, spend, _ = answer["results"]
    assert key["values"] == [1, 3] and spend["values"] == [3.5, None]
    assert spend["statuses"] == ["PRESENT", "NOT_FOUND"]
    stamp = dt.datetime.fromisoformat(spend["event_timestamps"][0])
    assert stamp == t0 + dt.timedelta(hours=2) and spend["event_timestamps"][1] is None


def test_delete_view_and_entity(client: TestClient[Litestar], store: Services, t0: dt.datetime) -> None:
    materialize(client, t0)
    store.features.apply(
        [
            OnDemandFeatureView(
                "per_visit", ["stats"], [Field("ratio", "float64")], {"ratio": "spend / visits"}
            )
        ]
    )
    refused = error(client.delete(f"{PREFIX}/views/stats"), 409, "name")
    assert refused["error"] == "cannot delete feature view 'stats': on-demand view 'per_visit' reads it"
    refused = error(client.delete(f"{PREFIX}/entities/customer"), 409, "name")
    assert "feature view 'stats' uses it" in refused["error"]
    error(client.delete(f"{PREFIX}/views/nope"), 404, "name")
    error(client.delete(f"{PREFIX}/entities/nope"), 404, "name")
    assert client.delete(f"{PREFIX}/views/per_visit").status_code == 200
    dry = client.delete(f"{PREFIX}/views/stats", params={"dry_run": "true"})
    assert dry.status_code == 200 and dry.json()["dry_run"] and dry.json()["online_rows"] == 3
    assert [v["name"] for v in client.get(f"{PREFIX}/views").json()] == ["stats"]
    deleted = client.delete(f"{PREFIX}/views/stats")
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert (body["kind"], body["name"], body["versions"], body["online_rows"]) == (
        "feature_view",
        "stats",
        [1],
        3,
    )
    assert client.get(f"{PREFIX}/views").json() == []
    gone = error(client.get(f"{PREFIX}/views/stats"), 404, "features")
    assert "'stats' was deleted" in gone["error"]
    lookup = client.post(f"{PREFIX}/online", json={"features": REFS, "entities": {"customer_id": [1]}})
    assert "'stats' was deleted" in error(lookup, 404, "features")["error"]
    error(client.delete(f"{PREFIX}/views/stats"), 404, "name")
    entity = client.delete(f"{PREFIX}/entities/customer")
    assert entity.status_code == 200 and entity.json()["kind"] == "entity"
    assert client.get(f"{PREFIX}/entities").json() == []


def test_token_is_required(store: Services) -> None:
    with TestClient(create_app(store, token=TOKEN), base_url=BASE) as anonymous:
        for method, path in (
            ("GET", "/views"),
            ("POST", "/online"),
            ("POST", "/materialize"),
            ("DELETE", "/views/stats"),
            ("DELETE", "/entities/customer"),
        ):
            response = anonymous.request(method, PREFIX + path, json={})
            assert response.status_code == 401, (path, response.text)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"entities": {"customer_id": [1]}}, "features"),
        ({"features": [], "entities": {"customer_id": [1]}}, "features"),
        ({"features": "stats:spend", "entities": {"customer_id": [1]}}, "features"),
        ({"features": REFS}, "entities"),
        (
            {"features": REFS, "entities": {"customer_id": [1]}, "entity_rows": [{"customer_id": 1}]},
            "entities",
        ),
        ({"features": REFS, "entities": {}}, "entities"),
        ({"features": REFS, "entities": {"customer_id": []}}, "entities"),
        ({"features": REFS, "entities": {"customer_id": [1, 2], "other": [1]}}, "entities"),
        ({"features": REFS, "entities": {"customer_id": 1}}, "entities"),
        ({"features": REFS, "entity_rows": []}, "entity_rows"),
        ({"features": REFS, "entities": {"customer_id": [1]}, "response": "xml"}, "response"),
        ({"features": REFS, "entities": {"customer_id": [1]}, "colour": "red"}, "colour"),
    ],
)
def test_bad_online_bodies_name_the_field(
    client: TestClient[Litestar], body: dict[str, Any], field: str
) -> None:
    error(client.post(f"{PREFIX}/online", json=body), 400, field)


def test_unknown_features_and_keys_are_refused(client: TestClient[Litestar]) -> None:
    for features, entities in (
        (["stats:nope"], {"customer_id": [1]}),
        (["nope:spend"], {"customer_id": [1]}),
        (["stats:spend"], {"wrong_key": [1]}),
    ):
        response = client.post(f"{PREFIX}/online", json={"features": features, "entities": entities})
        assert 400 <= response.status_code < 500, response.text
        body = response.json()
        assert body.get("field") and "Traceback" not in response.text
    assert client.get(f"{PREFIX}/views/nope").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "start"),
        ({"start": "2024-01-01"}, "end"),
        ({"start": "yesterday", "end": "now"}, "start"),
        ({"start": "2024-01-01", "end": "soon"}, "end"),
        ({"start": "2024-01-02", "end": "2024-01-01"}, "start"),
        ({"incremental": True, "start": "2024-01-01"}, "start"),
        ({"incremental": True, "chunk": "often"}, "chunk"),
        ({"start": "2024-01-01", "end": "2024-01-02", "when": 1}, "when"),
    ],
)
def test_bad_materialize_bodies_name_the_field(
    client: TestClient[Litestar], body: dict[str, Any], field: str
) -> None:
    error(client.post(f"{PREFIX}/materialize", json=body), 400, field)


def test_training_sets_are_listed(client: TestClient[Litestar], store: Services, t0: dt.datetime) -> None:
    import polars as pl

    entity = pl.DataFrame({"customer_id": [1, 2], "event_timestamp": [t0 + dt.timedelta(hours=3)] * 2})
    job = store.features.get_historical_features(entity, REFS, name="api-test")
    (listed,) = client.get(f"{PREFIX}/training-sets").json()
    assert listed["id"] == job.training_set_id and listed["name"] == "api-test"
    error(client.get(f"{PREFIX}/training-sets", params={"limit": 0}), 400, "limit")


# -- over a real socket -------------------------------------------------------------------


@pytest.fixture
def up(store: Services, home: Path, subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """``mlbox up`` on 127.0.0.1 over the applied home; yields its URL."""
    log = tmp_path / "up.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(MLBOX), "up", "--port", "0"], env=subprocess_env, stdout=err, stderr=err)
    try:
        yield wait_announced(home, proc, log=log)
    finally:
        stop(proc)


def test_online_over_a_real_socket(up: str, store: Services, t0: dt.datetime) -> None:
    token = store.home.token()
    with httpx.Client(
        base_url=up, headers={"Authorization": f"Bearer {token}"}, timeout=30, trust_env=False
    ) as c:
        body = {
            "start": (t0 - dt.timedelta(days=6)).isoformat(),
            "end": (t0 + dt.timedelta(hours=4)).isoformat(),
        }
        assert c.post(f"{PREFIX}/materialize", json=body).status_code == 200
        answer = c.post(f"{PREFIX}/online", json={"features": REFS, "entities": {"customer_id": [2, 1]}})
        assert answer.status_code == 200, answer.text
        assert answer.json()["values"]["spend"] == [2.0, 3.5]
        assert c.post(f"{PREFIX}/online", json={"features": REFS}).json()["field"] == "entities"
        assert httpx.get(f"{up}{PREFIX}/views", timeout=30, trust_env=False).status_code == 401
        # deleted from this process (as the CLI would): the appliance, which has the view's
        # lookup cached, stops serving its values at once
        store.features.delete_view("stats")
        gone = c.post(f"{PREFIX}/online", json={"features": REFS, "entities": {"customer_id": [2, 1]}})
        assert gone.status_code == 404, gone.text
        assert "'stats'" in gone.json()["error"] and "deleted" in gone.json()["error"]
