"""The Features screen over a real feature store: entities, views and versions, freshness,
a sample of rows, training sets; materialize or delete a view after a confirmation.

The store is seeded through the service (polars frames as sources, so no
temporary path shows on screen), a training set is built and one view is
materialized over a fixed window. The snapshot class fixes the catalog's
times in the test database afterwards: the service stamps them with
``time.time()``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import polars as pl
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from mlbox.features.definitions import Entity, FeatureView, Field, FrameSource, OnDemandFeatureView
from mlbox.features.loader import ttl_text
from mlbox.services import Services
from mlbox.tui.screens.features import FeaturesScreen
from mlbox.tui.views.features import EMPTY, short_source
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
from mlbox.tui.widgets.error_dialog import ErrorDialog
from tests.test_tui import app_for, settle, until

UTC = dt.UTC
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)
SIZE = (120, 36)
Snap = Callable[..., bool]


def _customers() -> pl.DataFrame:
    day = dt.timedelta(days=1)
    return pl.DataFrame(
        {
            "customer_id": [1, 2, 3, 1, 2, 3],
            "event_timestamp": [T0, T0, T0, T0 + day, T0 + day, T0 + 2 * day],
            "spend": [10.0, 20.0, 30.0, 11.5, 21.5, 33.25],
            "visits": [1, 2, 3, 2, 3, 5],
        }
    )


def _orders() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": [1, 2, 1],
            "event_timestamp": [T0 + dt.timedelta(hours=h) for h in (1, 5, 9)],
            "amount": [5.0, 7.5, 12.0],
        }
    )


def definitions(ttl_days: int = 7) -> list[object]:
    customer = Entity("customer", ["customer_id"], "a buyer")
    stats = FeatureView(
        "customer_stats", [customer], FrameSource(_customers()), "event_timestamp",
        [Field("spend", "float64"), Field("visits", "int64")], ttl=dt.timedelta(days=ttl_days),
    )  # fmt: skip
    orders = FeatureView(
        "orders", [customer], FrameSource(_orders()), "event_timestamp", [Field("amount", "float64")]
    )
    derived = OnDemandFeatureView(
        "spend_per_visit", [stats], [Field("ratio", "float64")], {"ratio": "spend / visits"}
    )
    return [customer, stats, orders, derived]


def seed_features(services: Services) -> None:
    """customer_stats v1 → v2 (TTL 7d → 3d), materialized over March 1–4; orders never
    materialized; one training set from customer_stats v2."""
    store = services.features
    store.apply(definitions(7))  # type: ignore[arg-type]
    store.apply(definitions(3))  # type: ignore[arg-type]
    entity = pl.DataFrame({"customer_id": [1, 2, 3], "event_timestamp": [T0 + dt.timedelta(days=2)] * 3})
    store.get_historical_features(entity, ["customer_stats:spend", "customer_stats:visits"], name="churn")
    store.materialize(T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=3), ["customer_stats"])


def fix_times(services: Services) -> None:
    """Fixed catalog times (test setup: the service stamps the wall clock); versions are
    immutable by trigger, dropped for this one update and put back, in one transaction."""
    t = T0.timestamp()
    with services.features.db.atomic() as conn:
        (trigger,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'feature_view_versions_immutable'"
        ).fetchone()
        conn.execute("DROP TRIGGER feature_view_versions_immutable")
        conn.execute("UPDATE feature_view_versions SET created_at = ? + 3600 * version", (t,))
        conn.execute(trigger)
        conn.execute("UPDATE feature_entities SET created_at = ?, updated_at = ?", (t, t))
        conn.execute("UPDATE feature_training_sets SET created_at = ? + 7200 + id", (t,))


@pytest.fixture
def seeded(services: Services) -> Services:
    seed_features(services)
    return services


async def open_features(pilot: Pilot[None]) -> FeaturesScreen:
    await settle(pilot)
    await pilot.press("4")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, FeaturesScreen)
    await until(pilot, lambda: not screen.reading and screen.sample_view is not None, lambda: screen.reading)
    return screen


def rows(table: DataTable[object]) -> list[list[str]]:
    return [[str(c) for c in table.get_row(k)] for k in table.rows]


def test_ttl_text() -> None:
    assert [ttl_text(s) for s in (None, 90, 3600, 86_400 * 3, 604_800, 1.5)] == [
        "-",
        "90s",
        "1h",
        "3d",
        "1w",
        "1.5s",
    ]


def test_short_source() -> None:
    assert short_source("parquet: /h/f/ab.parquet", "/h") == "parquet: $MLBOX_HOME/f/ab.parquet"
    long = short_source("parquet: /data/" + "x" * 60 + "/stats.parquet", "/h", width=30)
    assert long.startswith("parquet: …") and long.endswith("/stats.parquet") and len(long) == 30
    assert short_source("sql: SELECT *\n  FROM t", "/h") == "sql: SELECT * FROM t"


async def test_views_versions_sample_and_training_sets(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_features(pilot)
        views = rows(screen.table("views"))
        assert [v[0] for v in views] == ["customer_stats", "orders", "spend_per_visit"]
        assert views[0][1:3] == ["v2", "2"] and views[0][5] == "3d"
        assert "rows" in views[0][6] and views[1][6] == "never materialized" and views[2][6] == "on demand"
        assert rows(screen.table("entities")) == [["customer", "customer_id"]]
        (ts,) = rows(screen.table("training-sets"))
        assert ts[2] == "customer_stats v2" and ts[3] == "3" and ts[5] == "churn"
        detail = str(screen.query_one("#view-detail", Static).render())
        assert "● v2" in detail and "  v1" in detail and "spend:float64" in detail
        sample = screen.table("sample")
        assert [str(c.label) for c in sample.columns.values()] == [
            "customer_id",
            "event_timestamp",
            "spend",
            "visits",
        ]
        assert rows(sample)[0][:3] == ["3", "2024-03-03 00:00:00", "33.25"]  # newest first
        await pilot.press("down")
        await until(pilot, lambda: screen.sample_view == "orders")
        assert rows(screen.table("sample"))[0][2] == "12"
        await pilot.press("down")
        await until(pilot, lambda: screen.sample_view == "spend_per_visit")
        assert screen.table("sample").row_count == 0  # an on-demand view has no rows of its own


async def test_materialize_after_confirmation(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_features(pilot)
        await pilot.press("down")  # orders: no TTL, never materialized
        await until(pilot, lambda: screen.selected == "orders")
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        assert app.screen.change == "orders v1: its oldest row → now"
        await pilot.press("n")
        await settle(pilot)
        assert seeded.features.get_view("orders").freshness is None or (
            seeded.features.get_view("orders").freshness.materialized_end is None  # type: ignore[union-attr]
        )
        await pilot.press("m")
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: "rows" in rows(screen.table("views"))[1][6])
        fresh = seeded.features.get_view("orders").freshness
        assert fresh is not None and fresh.rows == 2 and fresh.materialized_end is not None
        assert fresh.materialized_end > time.time() - 600
        online = seeded.features.get_online_features([{"customer_id": 1}], ["orders:amount"])
        assert online["amount"] == [12.0]


async def test_materialize_needs_a_feature_view(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_features(pilot)
        await pilot.press("down", "down")
        await until(pilot, lambda: screen.selected == "spend_per_visit")
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, FeaturesScreen)  # no dialog: a warning instead


def changed(app: object) -> str:
    """The change the open confirmation dialog asks about."""
    dialog = app.screen  # type: ignore[attr-defined]
    assert isinstance(dialog, ConfirmDialog)
    return dialog.change


async def test_delete_after_confirmation(seeded: Services) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_features(pilot)
        assert screen.selected == "customer_stats"  # read by spend_per_visit: the store refuses
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ErrorDialog))
        error = app.screen
        assert (
            isinstance(error, ErrorDialog)
            and "on-demand view 'spend_per_visit' reads it" in error.error.message
        )
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("down", "down")
        await until(pilot, lambda: screen.selected == "spend_per_visit")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert changed(app) == "spend_per_visit: removes 0 online rows; keeps v1–v2 for lineage"
        await pilot.press("n")
        await settle(pilot)
        assert [v.name for v in seeded.features.list_views()][-1] == "spend_per_visit"
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await until(
            pilot, lambda: [r[0] for r in rows(screen.table("views"))] == ["customer_stats", "orders"]
        )
        await pilot.press("up", "up")
        await until(pilot, lambda: screen.selected == "customer_stats")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert changed(app) == "customer_stats: removes 3 online rows; keeps v1–v2 for lineage"
        await pilot.press("y")
        await until(pilot, lambda: [r[0] for r in rows(screen.table("views"))] == ["orders"])
        assert [v.name for v in seeded.features.list_views()] == ["orders"]
        assert seeded.features.freshness() == []  # its online rows went with it
        await until(pilot, lambda: screen.sample_view == "orders")
        (ts,) = rows(screen.table("training-sets"))  # its training set keeps its lineage
        assert ts[2] == "customer_stats v2"


async def test_empty_store(services: Services) -> None:
    app = app_for(services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, FeaturesScreen)
        await until(pilot, lambda: not screen.reading)
        assert str(screen.query_one("#summary", Static).render()) == EMPTY
        assert {"Materialize view", "Delete view"} <= {c.title for c in app.get_system_commands(screen)}
        await pilot.press("d")
        await pilot.pause()
        assert app.screen is screen  # nothing selected: a warning, no dialog


# -- snapshots ------------------------------------------------------------------------------------


class TestFeaturesScreen:
    def test_views_sample_and_training_sets(self, seeded: Services, utc: None, snap_compare: Snap) -> None:
        fix_times(seeded)
        assert snap_compare(app_for(seeded, live_s=3600), terminal_size=SIZE, run_before=open_features)

    def test_materialize_confirmation(self, seeded: Services, utc: None, snap_compare: Snap) -> None:
        fix_times(seeded)

        async def run_before(pilot: Pilot[None]) -> None:
            await open_features(pilot)
            await pilot.press("m")
            await pilot.pause()

        assert snap_compare(app_for(seeded, live_s=3600), terminal_size=SIZE, run_before=run_before)

    def test_delete_confirmation(self, seeded: Services, utc: None, snap_compare: Snap) -> None:
        fix_times(seeded)

        async def run_before(pilot: Pilot[None]) -> None:
            screen = await open_features(pilot)
            await pilot.press("down")
            await until(pilot, lambda: screen.sample_view == "orders")
            await pilot.press("d")
            await until(pilot, lambda: not isinstance(pilot.app.screen, FeaturesScreen))
            await pilot.pause()

        assert snap_compare(app_for(seeded, live_s=3600), terminal_size=SIZE, run_before=run_before)
