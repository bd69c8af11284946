"""Deleting feature views and entities, over a real home (SQLite catalog, online store,
registry): what stops resolving, what is kept for lineage, what is refused, how a view
comes back, and what a second store object (another process's view of the same home)
sees after a deletion.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LinearRegression

from mlbox.features import Entity, FeatureView, Field, OnDemandFeatureView, ParquetSource
from mlbox.features.service import FeatureStore
from mlbox.services import Services
from mlbox.store.errors import Conflict, InvalidInput, NotFound

UTC = dt.UTC
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)
WINDOW = (T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=2))


def _source(folder: Path) -> Path:
    path = folder / "stats.parquet"
    pl.DataFrame(
        {
            "customer_id": [1, 2, 1],
            "event_timestamp": [T0, T0, T0 + dt.timedelta(hours=5)],
            "spend": [1.0, 2.0, 1.5],
            "visits": [1, 2, 3],
        }
    ).write_parquet(path)
    return path


def definitions(folder: Path, *, ttl_days: int | None = None) -> list[object]:
    customer = Entity("customer", ["customer_id"])
    stats = FeatureView(
        "stats",
        [customer],
        ParquetSource(_source(folder)),
        "event_timestamp",
        [Field("spend", "float64"), Field("visits", "int64")],
        ttl=None if ttl_days is None else dt.timedelta(days=ttl_days),
    )
    ratio = OnDemandFeatureView(
        "ratio", [stats], [Field("per_visit", "float64")], {"per_visit": "spend / visits"}
    )
    return [customer, stats, ratio]


@pytest.fixture
def store(services: Services, tmp_path: Path) -> FeatureStore:
    """stats (materialized, one training set built from it) and the on-demand ratio over it."""
    fs = services.features
    fs.apply(definitions(tmp_path))  # type: ignore[arg-type]
    fs.materialize(*WINDOW)
    entity = pl.DataFrame({"customer_id": [1, 2], "event_timestamp": [T0 + dt.timedelta(hours=6)] * 2})
    fs.get_historical_features(entity, ["stats:spend"], name="churn")
    return fs


def online_tables(store: FeatureStore) -> list[str]:
    with sqlite3.connect(store.root / "online.db") as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'fv_%'")
        return [r[0] for r in rows]


def test_a_deleted_view_stops_listing_and_resolving_but_keeps_its_lineage(store: FeatureStore) -> None:
    assert store.get_online_features([{"customer_id": 1}], ["stats:spend"])["spend"] == [1.5]
    assert online_tables(store) == ["fv_stats_v1"]
    store.delete_view("ratio")  # the on-demand view reading stats goes first
    planned = store.delete_view("stats", dry_run=True)
    assert (planned.versions, planned.online_rows, planned.dry_run) == ([1], 2, True)
    assert [v.name for v in store.list_views()] == ["stats"]  # a dry run deletes nothing
    result = store.delete_view("stats")
    assert (result.kind, result.name, result.versions, result.online_rows) == (
        "feature_view",
        "stats",
        [1],
        2,
    )
    assert store.list_views() == [] and store.freshness() == []
    assert online_tables(store) == []  # materialized values are gone, not merely hidden
    for call in (
        lambda: store.get_online_features([{"customer_id": 1}], ["stats:spend"]),
        lambda: store.get_online_features([{"customer_id": 1}], ["stats:spend@v1"]),
        lambda: store.get_historical_features(
            pl.DataFrame({"customer_id": [1], "event_timestamp": [T0]}), ["stats:spend"]
        ),
        lambda: store.get_view("stats"),
        lambda: store.sample("stats"),
    ):
        with pytest.raises(NotFound) as info:
            call()
        assert "'stats' was deleted" in info.value.message
    with pytest.raises(NotFound, match="already deleted"):
        store.delete_view("stats")
    with pytest.raises(NotFound, match="no feature view named 'nope'") as info:
        store.delete_view("nope")
    assert info.value.field == "name"
    # the training set built from it still names what it was built from
    (ts,) = store.training_sets()
    assert [(v.name, v.version) for v in ts.views] == [("stats", 1)] and ts.features == ["stats:spend@v1"]
    assert store.training_sets(view="stats") == [ts]


def test_reapplying_restores_same_definition_same_version_changed_next(
    store: FeatureStore, tmp_path: Path
) -> None:
    store.delete_view("ratio")
    store.delete_view("stats")
    dry = store.apply(definitions(tmp_path)[:2], dry_run=True)  # type: ignore[arg-type]
    assert [(c.name, c.action, c.version) for c in dry.changes][1:] == [("stats", "restored", 1)]
    assert store.list_views() == []  # the dry run restored nothing
    again = store.apply(definitions(tmp_path)[:2])  # type: ignore[arg-type]
    assert [(c.name, c.action, c.version) for c in again.changes] == [
        ("customer", "unchanged", None),
        ("stats", "restored", 1),
    ]
    assert [v.name for v in store.list_views()] == ["stats"]
    # its online values went with the deletion: none until it is materialized again
    with pytest.raises(NotFound, match="materialize"):
        store.get_online_features([{"customer_id": 1}], ["stats:spend"])
    store.materialize(*WINDOW)
    assert store.get_online_features([{"customer_id": 1}], ["stats:spend"])["spend"] == [1.5]
    # deleted again and re-applied changed: the next version, the first one still pinned by lineage
    store.delete_view("stats")
    changed = store.apply(definitions(tmp_path, ttl_days=3)[:2])  # type: ignore[arg-type]
    assert [(c.name, c.action, c.version) for c in changed.changes][1:] == [("stats", "restored", 2)]
    view = store.get_view("stats")
    assert view.version == 2 and [v.version for v in view.versions] == [1, 2] and view.ttl_s == 3 * 86_400
    # an on-demand view cannot be applied over a deleted source; applied together, both come back
    store.delete_view("stats")
    with pytest.raises(InvalidInput, match="names source view 'stats', which was deleted") as info:
        store.apply(definitions(tmp_path)[2:])  # type: ignore[arg-type]
    assert info.value.field == "sources"
    both = store.apply(definitions(tmp_path, ttl_days=3))  # type: ignore[arg-type]
    assert [(c.name, c.action) for c in both.changes][1:] == [("stats", "restored"), ("ratio", "restored")]


def test_a_view_read_by_a_live_on_demand_view_is_refused(store: FeatureStore) -> None:
    with pytest.raises(Conflict) as info:
        store.delete_view("stats")
    assert info.value.field == "name"
    assert "on-demand view 'ratio' reads it" in info.value.message
    assert [v.name for v in store.list_views()] == ["ratio", "stats"]
    assert online_tables(store) == ["fv_stats_v1"]  # refused: nothing touched
    assert store.get_online_features([{"customer_id": 2}], ["ratio:per_visit"])["per_visit"] == [1.0]


def test_a_view_a_registered_model_takes_is_refused(services: Services, store: FeatureStore) -> None:
    store.delete_view("ratio")
    x = np.array([[1.0, 1.0], [2.0, 2.0], [1.5, 3.0]])
    model = LinearRegression().fit(x, x.sum(axis=1))
    services.registry.register("plain", model=model, example_input=x[:2])  # no features: no claim
    services.registry.register(
        "eta", model=model, example_input=x[:2], features=["stats:spend", "stats:visits"]
    )
    services.registry.register(
        "eta", model=model, example_input=x[:2], features=["stats:spend@v1", "stats:visits"]
    )
    with pytest.raises(Conflict) as info:
        store.delete_view("stats")
    assert (
        info.value.message
        == "cannot delete feature view 'stats': model versions eta/1, eta/2 take its features"
    )
    assert [v.name for v in store.list_views()] == ["stats"]
    assert store.get_online_features([{"customer_id": 1}], ["stats:spend"])["spend"] == [1.5]


def test_entities_are_deleted_only_when_no_live_view_uses_them(store: FeatureStore, tmp_path: Path) -> None:
    with pytest.raises(Conflict, match="cannot delete entity 'customer': feature view 'stats' uses it"):
        store.delete_entity("customer")
    store.delete_view("ratio")
    store.delete_view("stats")
    planned = store.delete_entity("customer", dry_run=True)
    assert planned.dry_run and [e.name for e in store.list_entities()] == ["customer"]
    assert store.delete_entity("customer").kind == "entity"
    assert store.list_entities() == []
    with pytest.raises(NotFound, match="no entity named 'customer'"):
        store.delete_entity("customer")
    # the view cannot come back without its entity, and comes back with it
    with pytest.raises(Exception, match="unknown entity 'customer'"):
        store.apply(definitions(tmp_path)[1:2])  # type: ignore[arg-type]
    changes = store.apply(definitions(tmp_path)[:2]).changes  # type: ignore[arg-type]
    assert [(c.name, c.action) for c in changes] == [("customer", "created"), ("stats", "restored")]


def test_another_process_reading_a_deleted_view_gets_not_found(
    services: Services, store: FeatureStore
) -> None:
    """A second store over the same home has the view's plan and reader cached; after the
    deletion its next read must not serve the old values nor fail with a SQLite error."""
    other = FeatureStore(store.db, services.home)
    assert other.get_online_features([{"customer_id": 1}], ["stats:spend"])["spend"] == [1.5]
    store.delete_view("ratio")
    store.delete_view("stats")
    with pytest.raises(NotFound) as info:
        other.get_online_features([{"customer_id": 1}], ["stats:spend"])
    assert "'stats'" in info.value.message and ("deleted" in info.value.message)
    assert other.list_views() == [] and other.freshness() == []


def test_rows_left_by_a_crash_between_the_two_commits_are_never_served_and_cleaned_up(
    store: FeatureStore,
) -> None:
    """The catalog's deletion committed, the online drop did not (the process died): the state
    `FeatureStore.delete_view` would leave, made here by running only its first half."""
    store.delete_view("ratio")
    store.catalog.delete_view("stats")
    assert online_tables(store) == ["fv_stats_v1"]  # left behind
    assert store.freshness() == [] and store.list_views() == []
    with pytest.raises(NotFound, match="'stats' was deleted"):
        store.get_online_features([{"customer_id": 1}], ["stats:spend"])
    with pytest.raises(NotFound, match="already deleted"):
        store.delete_view("stats")
    assert online_tables(store) == []  # the retry dropped them
