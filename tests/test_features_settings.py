"""``MLBOX_FEATURES_MEMORY_LIMIT`` and ``MLBOX_FEATURES_THREADS``: checked at settings load,
passed by `Services.open` to the feature store, and obeyed by the DuckDB it opens."""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import replace
from pathlib import Path

import duckdb
import polars as pl
import pytest

from mlbox.features import Entity, FeatureView, Field, ParquetSource
from mlbox.features.config import FeatureSettings, check_memory_limit
from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.store.errors import InvalidInput
from tests.helpers import MLBOX

ACCEPTED = ["2GB", "512MB", "1.5 GB", "4GiB", "64mib", "100000KB", "1TB", "2G", "50%", "0.5%"]


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.features == FeatureSettings(memory_limit="2GB", threads=None)


def test_values_are_read() -> None:
    s = Settings.from_env({"MLBOX_FEATURES_MEMORY_LIMIT": " 512MB ", "MLBOX_FEATURES_THREADS": "3"})
    assert s.features == FeatureSettings(memory_limit="512MB", threads=3)


@pytest.mark.parametrize("value", ACCEPTED)
def test_every_accepted_size_is_one_duckdb_takes(value: str) -> None:
    """The check is ours (settings load must not import DuckDB); DuckDB must agree with it."""
    assert check_memory_limit(value) == value.strip()
    con = duckdb.connect(":memory:", config={"memory_limit": value})
    try:
        assert con.execute("SELECT sum(range) FROM range(1000)").fetchone() == (499_500,)
    finally:
        con.close()


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"MLBOX_FEATURES_MEMORY_LIMIT": "lots"}, "not a size like 2GB"),
        ({"MLBOX_FEATURES_MEMORY_LIMIT": "2XB"}, "not a size like 2GB"),
        ({"MLBOX_FEATURES_MEMORY_LIMIT": "2000000000"}, "not a size like 2GB"),  # DuckDB wants a unit
        ({"MLBOX_FEATURES_MEMORY_LIMIT": "100KB"}, "too small"),
        ({"MLBOX_FEATURES_MEMORY_LIMIT": "150%"}, "(0, 100]"),
        ({"MLBOX_FEATURES_THREADS": "four"}, "not a whole number"),
        ({"MLBOX_FEATURES_THREADS": "0"}, "at least 1"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Settings.from_env(env)
    (name,) = env
    assert info.value.field == name and name in info.value.message and needle in info.value.message


def test_services_pass_them_to_the_store_and_duckdb_obeys(settings: Settings, tmp_path: Path) -> None:
    services = Services.open(replace(settings, features=FeatureSettings(memory_limit="64MiB", threads=1)))
    store = services.features
    assert (store.memory_limit, store.threads) == ("64MiB", 1)
    con = duckdb.connect(":memory:", config=store._duckdb_config())  # the config the store's joins get
    try:
        limit, threads = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads')"
        ).fetchone()  # type: ignore[misc]
    finally:
        con.close()
    assert (limit, threads) == ("64.0 MiB", 1)
    # and the store works under them
    t0 = dt.datetime(2024, 1, 1)
    pl.DataFrame({"k": [1, 2], "ts": [t0, t0], "v": [1.0, 2.0]}).write_parquet(tmp_path / "s.parquet")
    key = Entity("key", ["k"])
    store.apply(
        [key, FeatureView("v", [key], ParquetSource(tmp_path / "s.parquet"), "ts", [Field("v", "float64")])]
    )
    frame = store.get_historical_features(
        pl.DataFrame({"k": [2], "event_timestamp": [t0]}), ["v:v"]
    ).to_polars()
    assert frame["v"].to_list() == [2.0]


def test_a_bad_value_is_one_line_from_the_cli(subprocess_env: dict[str, str]) -> None:
    env = dict(subprocess_env, MLBOX_FEATURES_MEMORY_LIMIT="plenty")
    proc = subprocess.run(
        [str(MLBOX), "features", "ls"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.count("\n") == 1 and "MLBOX_FEATURES_MEMORY_LIMIT='plenty'" in proc.stderr
