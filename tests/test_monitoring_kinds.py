"""Which columns drift and quality checks treat as numbers: a float column is numeric whatever
its distinct count (a constant float reference was tested as categories, "new categories
'0.3'"), only text, bools and integers with few values are categorical, and the streamed
window scan (`mlbox.monitoring.windowscan`) agrees with the frame read of the same window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from mlbox.monitoring import binned
from mlbox.monitoring import service as service_mod
from mlbox.monitoring.drift import column_kind
from mlbox.services import Services
from mlbox.settings import Settings


def test_a_float_is_numeric_whatever_its_distinct_count() -> None:
    assert column_kind(pd.Series([0.17] * 50)) == "numeric"
    assert column_kind(pd.Series([0.0, 1.0] * 50)) == "numeric"
    assert column_kind(pd.Series([0.5, np.nan] * 5, dtype="Float64")) == "numeric"
    assert column_kind(pd.Series([1, 2, 3] * 10)) == "categorical"
    assert column_kind(pd.Series(range(50))) == "numeric"
    assert column_kind(pd.Series([True, False] * 5)) == "categorical"
    assert column_kind(pd.Series(["a", "b"] * 5)) == "categorical"


def test_a_constant_float_reference_is_checked_as_a_number_framed_and_streamed(tmp_path: Path) -> None:
    services = Services.open(Settings.from_env({"MLBOX_HOME": str(tmp_path)}))
    rng = np.random.default_rng(3)
    train = pd.DataFrame({"x": rng.normal(0, 1, 300), "k": np.full(300, 0.17)})
    model = LinearRegression().fit(train, train["x"] * 2)
    services.registry.register("m", model=model, example_input=train.head(5))
    services.registry.set_alias("m", "champion", 1)
    log = services.serving.predlog
    assert log is not None
    for i in range(4):
        k = np.full(100, 0.17 if i < 2 else 0.3)
        cols = {"x": rng.normal(0, 1, 100), "k": k}
        log.append((f"r{i}", "m", 1, 1_780_000_000.0 + i, 1.0, False, cols, {"output": cols["x"] * 2}))
    log.flush()
    ref = tmp_path / "train.parquet"
    train.to_parquet(ref)
    mon = services.monitoring
    mon.set_reference("m@champion", path=ref)
    framed = mon.evaluate("m@champion")
    with pytest.MonkeyPatch.context() as mp:  # the same 400 rows streamed, as a large window is
        mp.setattr(binned, "LARGE_WINDOW", 100)
        mp.setattr(service_mod, "STREAM_PAST", 100)
        streamed = mon.evaluate("m@champion")
        mp.setattr(service_mod, "STREAM_PAST", 10**12)
        framed_binned = mon.evaluate("m@champion")
    for ev in (framed, streamed, framed_binned):
        assert ev.rows == 400
        by_column = {v.column: v for v in ev.drift}
        assert by_column["k"].kind == "numeric" and by_column["k"].test in {"ks", "wasserstein"}
        assert by_column["k"].drifted, (ev.drift, ev.quality)
        quality = {c.column: c for c in ev.quality.columns}
        assert quality["k"].new_categories == []
        assert not any("new categories" in p for p in ev.quality.problems), ev.quality.problems
    assert [(v.column, v.kind, v.test, v.drifted) for v in streamed.drift] == [
        (v.column, v.kind, v.test, v.drifted) for v in framed_binned.drift
    ]
    assert streamed.quality == framed_binned.quality
    # a regressor's predictions are numbers too: profiled as such, not as one category a value
    prof = mon.reference_profile("m", 1)
    assert prof is not None and prof.columns["prediction"].kind == "numeric"
