"""A bias segment joined from the feature store: the logged rows carry the entity key, the
monitoring service asks the features service for the online value of a ``view:feature``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression

from mlbox.features import Entity, FeatureView, Field, ParquetSource
from mlbox.monitoring.schemas import FeedbackItem
from mlbox.services import Services
from mlbox.store.errors import InvalidInput

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def test_bias_across_a_feature_looked_up_by_the_logged_entity_key(services: Services, tmp_path: Path) -> None:
    source = tmp_path / "tiers.parquet"
    pl.DataFrame(
        {"customer_id": [1, 2, 3, 4], "event_timestamp": [T0] * 4, "tier": ["gold", "gold", "basic", "basic"]}
    ).write_parquet(source)
    customer = Entity("customer", ["customer_id"])
    view = FeatureView(
        "tiers", [customer], ParquetSource(source), "event_timestamp", [Field("tier", "string")]
    )
    services.features.apply([customer, view])
    services.features.materialize(T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=1))

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"customer_id": rng.integers(1, 5, 400), "x": rng.normal(size=400)})
    model = LogisticRegression().fit(train, (train["x"] > 0).astype(int))
    services.registry.register("seg", model=model, example_input=train.iloc[:2])
    services.registry.set_alias("seg", "champion", 1)
    mon = services.monitoring
    mon.set_reference("seg@champion", frame=train)

    log = services.serving.predlog
    assert log is not None
    ids = np.array([1, 2, 3, 4] * 25)
    x = rng.normal(size=100)
    predicted = np.where(ids <= 2, 1, (x > 0).astype(int))  # gold customers always get the positive class
    now = T0.timestamp() + 10
    for i in range(100):
        log.append(
            (f"r{i}", "seg", 1, now + i, 1.0, False, {"customer_id": ids[i : i + 1], "x": x[i : i + 1]},
             {"label": predicted[i : i + 1]})
        )  # fmt: skip
    log.flush()
    mon.add_feedback([FeedbackItem(f"r{i}", int(x[i] > 0)) for i in range(100)])

    ev = mon.evaluate("seg@champion", segment="tiers:tier")
    assert ev.bias is not None
    groups = {g.segment: g for g in ev.bias.segments}
    assert set(groups) == {"gold", "basic"} and groups["gold"].rows == 50
    assert groups["gold"].selection_rate == 1.0
    assert ev.bias.demographic_parity_difference == pytest.approx(1.0 - groups["basic"].selection_rate)

    with pytest.raises(InvalidInput) as exc:
        mon.evaluate("seg@champion", segment="nope:tier")
    assert exc.value.field == "segment"
