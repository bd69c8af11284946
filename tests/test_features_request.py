"""On-demand features that read values sent with the request (Feast's ``RequestSource``).

A ``stats`` view holds each user's average amount; the on-demand view ``txn``
divides the transaction being scored (``amount``, sent with the request) by it.
Values are checked against numbers worked out by hand, offline (entity frame
columns), online (entity rows, in process and over HTTP), when a served model
names the feature, and in the CLI and TUI listings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import polars as pl
import pytest
from litestar.testing import TestClient
from sklearn.linear_model import LinearRegression

from mlbox.api.app import create_app
from mlbox.appliance import Appliance
from mlbox.features import Entity, FeatureView, Field, OnDemandFeatureView, ParquetSource, load_definitions
from mlbox.features.service import FeatureStore
from mlbox.services import Services
from mlbox.store import Database, Home
from mlbox.store.errors import InvalidInput

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
REFS = ["txn:ratio", "txn:is_web", "txn:doubled"]

YAML = """
entities:
  - {name: user, join_keys: [user_id]}
feature_views:
  - name: stats
    entities: [user]
    source: {parquet: stats.parquet}
    timestamp_field: ts
    features: [{avg_amount: float64}, {n: int64}]
on_demand_feature_views:
  - name: txn
    sources: [stats]
    request: {amount: float64, channel: string}
    features:
      - {name: ratio, dtype: float64, expression: "amount / avg_amount"}
      - {name: is_web, dtype: bool, expression: "channel = 'web'"}
      - {name: doubled, dtype: float64, expression: "avg_amount * 2"}
  - name: listed
    sources: [stats]
    request: [{name: qty, dtype: int64}, {price: float32}]
    features:
      - {name: total, dtype: float64, expression: "qty * price + n"}
"""


def write_stats(folder: Path) -> Path:
    """User 1 averages 10 until T0+2h, then 20; user 2 averages 4; user 3 has no row."""
    path = folder / "stats.parquet"
    pl.DataFrame(
        {
            "user_id": [1, 1, 2],
            "ts": [T0, T0 + 2 * H, T0],
            "avg_amount": [10.0, 20.0, 4.0],
            "n": [3, 5, 7],
        }
    ).write_parquet(path)
    return path


def definitions(path: Path, request: Any = None) -> list[Any]:
    user = Entity("user", "user_id")
    stats = FeatureView(
        "stats", [user], ParquetSource(path), "ts", [Field("avg_amount"), Field("n", "int64")]
    )
    txn = OnDemandFeatureView(
        "txn", [stats], [Field("ratio"), Field("is_web", "bool"), Field("doubled")],
        {"ratio": "amount / avg_amount", "is_web": "channel = 'web'", "doubled": "avg_amount * 2"},
        request=[Field("amount", "float64"), Field("channel", "string")] if request is None else request,
    )  # fmt: skip
    return [user, stats, txn]


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    home = Home(tmp_path / "home").ensure()
    store = FeatureStore(Database(home.db_path), home)
    store.apply(definitions(write_stats(tmp_path)))
    return store


def error(store: FeatureStore, call: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        call()
    return info.value


# -- offline ------------------------------------------------------------------------------


def test_offline_request_values_come_from_entity_frame_columns(store: FeatureStore) -> None:
    entity = pl.DataFrame(
        {
            "user_id": [1, 1, 2, 3],
            "event_timestamp": [T0 + H, T0 + 3 * H, T0, T0 + H],
            "amount": [5, 40, 2, 9],  # integers: a float64 request field takes them
            "channel": ["web", "pos", "web", None],
        }
    )
    job = store.get_historical_features(entity, [*REFS, "stats:avg_amount"])
    frame = job.to_polars()
    assert frame.columns == ["user_id", "event_timestamp", "amount", "channel", "ratio", "is_web", "doubled",
                             "avg_amount"]  # fmt: skip
    assert frame["ratio"].to_list() == [0.5, 2.0, 0.5, None]  # 5/10, 40/20 (after the 2h change), 2/4
    assert frame["is_web"].to_list() == [True, False, True, None]
    assert frame["doubled"].to_list() == [20.0, 40.0, 8.0, None]
    assert [v.name for v in job.training_set.views] == ["stats", "txn"]
    as_pandas = store.get_historical_features(entity.to_pandas(), ["txn:ratio"]).to_polars()
    assert as_pandas["ratio"].to_list() == [0.5, 2.0, 0.5, None]
    # a feature that reads no request field needs none of the columns
    plain = store.get_historical_features(entity.select("user_id", "event_timestamp"), ["txn:doubled"])
    assert plain.to_polars()["doubled"].to_list() == [20.0, 40.0, 8.0, None]


def test_offline_missing_or_mistyped_request_column_is_named(store: FeatureStore) -> None:
    base = pl.DataFrame({"user_id": [1], "event_timestamp": [T0 + H], "channel": ["web"]})
    exc = error(store, lambda: store.get_historical_features(base, ["txn:ratio"]))
    assert exc.field == "entity_df" and "'amount'" in exc.message and "'txn'" in exc.message
    text = base.with_columns(amount=pl.lit("12.5"))
    exc = error(store, lambda: store.get_historical_features(text, ["txn:ratio"]))
    assert exc.field == "entity_df" and "'amount'" in exc.message and "float64" in exc.message
    numeric = base.with_columns(amount=pl.lit(1.0), channel=pl.lit(3))
    exc = error(store, lambda: store.get_historical_features(numeric, ["txn:is_web"]))
    assert exc.field == "entity_df" and "'channel'" in exc.message


# -- online -------------------------------------------------------------------------------


def test_online_request_values_come_with_each_entity_row(store: FeatureStore) -> None:
    store.materialize(T0 - H, T0 + 3 * H)
    rows = [
        {"user_id": 1, "amount": 5, "channel": "web"},
        {"user_id": 2, "amount": 3.0, "channel": "pos"},
        {"user_id": 3, "amount": 1.0, "channel": "web"},
    ]
    online = store.get_online_features(rows, REFS, with_event_time=True)
    assert online["user_id"] == [1, 2, 3]
    assert online["ratio"] == [0.25, 0.75, None]  # 5/20 (latest), 3/4, no stats row
    assert online["is_web"] == [True, False, True]
    assert online["doubled"] == [40.0, 8.0, None]
    assert online["ratio__event_ts"] == [(T0 + 2 * H).timestamp(), T0.timestamp(), None]
    # online agrees with the offline join at a time after every row
    entity = pl.DataFrame(rows).with_columns(event_timestamp=pl.lit(T0 + 3 * H))
    offline = store.get_historical_features(entity, REFS).to_polars()
    for name in ("ratio", "is_web", "doubled"):
        assert offline[name].to_list() == online[name], name
    assert store.get_online_features([{"user_id": 1}], ["txn:doubled"])["doubled"] == [40.0]
    assert store.request_fields(REFS) == {"amount": "float64", "channel": "string"}
    assert store.request_fields(["txn:doubled"]) == {}


def test_online_missing_or_mistyped_request_value_is_named(store: FeatureStore) -> None:
    store.materialize(T0 - H, T0 + 3 * H)
    exc = error(store, lambda: store.get_online_features([{"user_id": 1, "channel": "web"}], REFS))
    assert exc.field == "amount" and "request field 'amount'" in exc.message
    bad = [{"user_id": 1, "amount": "lots", "channel": "web"}]
    exc = error(store, lambda: store.get_online_features(bad, REFS))
    assert exc.field == "amount" and "'lots'" in exc.message
    flag = [{"user_id": 1, "amount": True, "channel": "web"}]
    assert error(store, lambda: store.get_online_features(flag, REFS)).field == "amount"


def test_online_over_http_takes_request_values_beside_the_keys(services: Services, tmp_path: Path) -> None:
    services.features.apply(definitions(write_stats(tmp_path)))
    services.features.materialize(T0 - H, T0 + 3 * H)
    with TestClient(create_app(services, token="t"), base_url="http://127.0.0.1:5151") as client:
        client.headers.update({"Authorization": "Bearer t"})
        body = {"features": ["txn:ratio"], "entities": {"user_id": [1, 2], "amount": [5.0, 2.0]}}
        answer = client.post("/api/v1/features/online", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["values"] == {"user_id": [1, 2], "ratio": [0.25, 0.5]}
        rows = {"features": ["txn:ratio"], "entity_rows": [{"user_id": 2, "amount": 1}]}
        assert client.post("/api/v1/features/online", json=rows).json()["values"]["ratio"] == [0.25]
        missing = client.post(
            "/api/v1/features/online", json={"features": ["txn:ratio"], "entities": {"user_id": [1]}}
        )
        assert missing.status_code in (400, 422), missing.text
        assert missing.json()["field"] == "amount" and "amount" in missing.json()["error"]


# -- definitions --------------------------------------------------------------------------


def test_bad_request_fields_are_refused_at_apply(store: FeatureStore, tmp_path: Path) -> None:
    path = tmp_path / "stats.parquet"

    def odfv(request: Any, exprs: dict[str, str] | None = None) -> OnDemandFeatureView:
        return OnDemandFeatureView("bad", ["stats"], [Field("x")], exprs or {"x": "amount / avg_amount"},
                                   request=request)  # fmt: skip

    clash = error(store, lambda: store.apply([odfv([Field("avg_amount")])]))
    assert clash.field == "request" and "'avg_amount'" in clash.message and "'stats'" in clash.message
    dtype = error(store, lambda: odfv({"amount": "decimal"}))
    assert dtype.field == "request" and "'amount'" in dtype.message and "'decimal'" in dtype.message
    unknown = error(store, lambda: store.apply([odfv([Field("amount")], {"x": "amount / avgg"})]))
    assert unknown.field == "expressions" and "'avgg'" in unknown.message and "amount" in unknown.message
    own = error(store, lambda: odfv([Field("x")], {"x": "avg_amount"}))
    assert own.field == "request" and "'x'" in own.message
    twice = error(store, lambda: odfv([Field("amount"), Field("amount", "int64")]))
    assert twice.field == "request"
    reserved = error(store, lambda: odfv({"__amount": "float64"}))
    assert reserved.field == "request"
    assert [c.action for c in store.apply(definitions(path)).changes] == ["unchanged"] * 3


def test_yaml_request_fields_round_trip(tmp_path: Path) -> None:
    write_stats(tmp_path)
    (tmp_path / "defs.yaml").write_text(YAML)
    defs = load_definitions(tmp_path / "defs.yaml")
    txn, listed = (d for d in defs if isinstance(d, OnDemandFeatureView))
    assert [(f.name, f.dtype) for f in txn.request] == [("amount", "float64"), ("channel", "string")]
    assert [(f.name, f.dtype) for f in listed.request] == [("qty", "int64"), ("price", "float32")]
    home = Home(tmp_path / "home").ensure()
    store = FeatureStore(Database(home.db_path), home)
    store.apply(tmp_path / "defs.yaml")
    stored = store.get_definition("txn")
    assert isinstance(stored, OnDemandFeatureView)
    assert stored.canonical() == txn.canonical() and stored.request == txn.request
    # the same definition in Python is the same version
    python = definitions(tmp_path / "stats.parquet")
    assert [c.action for c in store.apply(python).changes] == ["unchanged"] * 3
    assert [f.name for f in store.get_view("listed").request] == ["qty", "price"]
    entity = pl.DataFrame({"user_id": [2], "event_timestamp": [T0], "qty": [3], "price": [1.5]})
    assert store.get_historical_features(entity, ["listed:total"]).to_polars()["total"].to_list() == [11.5]
    (tmp_path / "bad.yaml").write_text(YAML.replace("channel: string", "channel: text"))
    with pytest.raises(InvalidInput) as info:
        load_definitions(tmp_path / "bad.yaml")
    assert (
        info.value.field == "request"
        and "'channel'" in info.value.message
        and "bad.yaml" in info.value.message
    )


def test_request_fields_are_part_of_the_version(store: FeatureStore, tmp_path: Path) -> None:
    path = tmp_path / "stats.parquet"
    before = store.get_view("txn")
    assert (before.version, [f.name for f in before.request]) == (1, ["amount", "channel"])
    widened = [Field("amount", "float64"), Field("channel", "string"), Field("note", "string")]
    assert store.apply(definitions(path, widened)).changes[-1].action == "updated"
    retyped = [Field("amount", "float32"), Field("channel", "string")]
    change = store.apply(definitions(path, retyped)).changes[-1]
    assert (change.action, change.version) == ("updated", 3)
    assert store.apply(definitions(path, retyped)).changes[-1].action == "unchanged"
    # older versions keep their request fields; a view without any stores no request key
    v1 = store.get_definition("txn", 1)
    assert isinstance(v1, OnDemandFeatureView) and [f.dtype for f in v1.request] == ["float64", "string"]
    plain = OnDemandFeatureView("plain", ["stats"], [Field("d")], {"d": "avg_amount * 2"})
    assert "request" not in plain.canonical() and plain.request == ()
    store.apply([plain])
    assert store.get_definition("plain").canonical() == plain.canonical()


# -- front ends ---------------------------------------------------------------------------


def test_cli_ls_shows_request_fields(
    services: Services, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers import ok

    services.features.apply(definitions(write_stats(tmp_path)))
    out = ok(capsys, "features", "ls")
    (line,) = [ln for ln in out.splitlines() if ln.strip().startswith("txn ")]
    assert "request amount:float64, channel:string" in line


async def test_tui_view_detail_shows_request_fields(services: Services, tmp_path: Path) -> None:
    from textual.widgets import Static

    from tests.test_tui import app_for, until
    from tests.test_tui_features import open_features

    services.features.apply(definitions(write_stats(tmp_path)))
    app = app_for(services)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_features(pilot)
        await pilot.press("down")
        await until(pilot, lambda: screen.selected == "txn")
        detail = str(screen.query_one("#view-detail", Static).render())
        assert "request amount:float64, channel:string" in detail


# -- serving ------------------------------------------------------------------------------


@pytest.fixture
def served(services: Services, tmp_path: Path) -> Iterator[tuple[Appliance, LinearRegression]]:
    """A model trained on ``stats:avg_amount`` and ``txn:ratio``, served by a real appliance."""
    services.features.apply(definitions(write_stats(tmp_path)))
    services.features.materialize(T0 - H, T0 + 3 * H)
    x = np.array([[10.0, 0.5], [20.0, 2.0], [4.0, 0.25]])
    model = LinearRegression().fit(x, x @ np.array([0.5, 3.0]) + 1)
    services.registry.register(
        "fraud", model=model, example_input=x, features=["stats:avg_amount", "txn:ratio"]
    )
    services.registry.set_alias("fraud", "champion", 1)  # open routes score only what an alias serves
    app = Appliance(replace(services, settings=replace(services.settings, port=0)))
    app.start_loops()
    app.start_http()
    try:
        assert app.serving.wait_ready(30)
        yield app, model
    finally:
        app.stop()


def test_served_model_scores_entity_keys_and_request_values(
    served: tuple[Appliance, LinearRegression],
) -> None:
    app, model = served
    expected = model.predict(np.array([[20.0, 0.25], [4.0, 2.0]]))  # 5/20 and 8/4 by hand
    records = [{"user_id": 1, "amount": 5.0}, {"user_id": 2, "amount": 8}]
    r = httpx.post(f"{app.url}/api/v1/models/fraud@champion/predict", json={"dataframe_records": records})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], expected)
    split = {"dataframe_split": {"columns": ["user_id", "amount"], "data": [[2, 8.0]]}}
    r = httpx.post(f"{app.url}/api/v1/models/fraud@champion/predict", json=split)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], expected[1:])
    r = httpx.post(
        f"{app.url}/v2/models/fraud@champion/infer",
        json={"inputs": [{"name": "user_id", "shape": [1], "datatype": "INT64", "data": [1]},
                         {"name": "amount", "shape": [1], "datatype": "FP64", "data": [5.0]}]},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["outputs"][0]["data"], expected[:1])
    r = httpx.post(
        f"{app.url}/api/v1/models/fraud@champion/predict", json={"dataframe_records": [{"user_id": 1}]}
    )
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "amount" and "amount" in r.json()["error"]


def test_pandas_entity_frame_with_request_column(store: FeatureStore) -> None:
    entity = pd.DataFrame(
        {
            "user_id": [2],
            "event_timestamp": [pd.Timestamp(T0)],
            "amount": [np.float32(1.0)],
            "channel": ["web"],
        }
    )
    frame = store.get_historical_features(entity, REFS).to_polars()
    assert frame.select("ratio", "is_web", "doubled").row(0) == (0.25, True, 8.0)
