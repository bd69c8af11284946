"""Champion vs challenger (McNemar) and bias per segment (fairlearn's definitions), pure and on
the shadow traffic of a real prediction log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from scipy.stats import binomtest
from sklearn.linear_model import LogisticRegression

from mlbox.monitoring.compare import bias, compare, mcnemar
from mlbox.monitoring.schemas import FeedbackItem
from mlbox.services import Services
from tests.test_monitoring_service import T0, _proba, seed


def test_mcnemar_exact_and_chi_squared() -> None:
    stat, p = mcnemar(3, 12)
    assert stat == 3 and p == pytest.approx(binomtest(3, 15, 0.5).pvalue)
    stat, p = mcnemar(20, 45)
    assert stat == pytest.approx((25 - 1) ** 2 / 65)
    from scipy.stats import chi2

    assert p == pytest.approx(chi2.sf(stat, 1))
    assert mcnemar(0, 0) == (0.0, 1.0)


def test_compare_counts_discordant_rows() -> None:
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0] * 10)
    a = y.copy()
    b = y.copy()
    a[:30] = 1 - a[:30]  # the champion is wrong on 30 rows, the challenger on none
    got = compare(1, 2, a, b, y.tolist(), np.ones(y.size, bool))
    assert (got.champion_only_right, got.challenger_only_right) == (0, 30)
    assert got.agreement == pytest.approx(50 / 80) and got.better == "challenger"
    assert got.champion_accuracy == pytest.approx(50 / 80) and got.challenger_accuracy == 1.0


def test_bias_equals_fairlearn() -> None:
    rng = np.random.default_rng(8)
    n = 2000
    group = rng.choice(["a", "b", "c"], n)
    y = rng.integers(0, 2, n)
    p_pos = np.where(group == "a", 0.7, np.where(group == "b", 0.5, 0.3))
    pred = np.where(rng.random(n) < p_pos, 1, 0)
    got = bias("group", group.tolist(), pred.tolist(), y.tolist(), positive=1)
    assert got.demographic_parity_difference == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=group)
    )
    assert got.equalized_odds_difference == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=group)
    )
    assert [s.segment for s in got.segments] == ["a", "b", "c"] and sum(s.rows for s in got.segments) == n


def test_shadow_traffic_of_the_challenger_is_compared(services: Services, tmp_path: Path) -> None:
    world = seed(services, tmp_path)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 4))
    services.registry.register(
        "clf", model=LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), example_input=x[:2]
    )
    services.registry.set_alias("clf", "challenger", 2)
    log = services.serving.predlog
    assert log is not None
    proba = _proba(world.base_x)
    flipped = proba[:, ::-1].copy()
    for i in range(200):  # the challenger answers the same requests, wrong on the first 40
        p = flipped[i : i + 1] if i < 40 else proba[i : i + 1]
        log.append((f"b{i}", "clf", 2, T0 + i + 0.5, 1.0, True, world.base_x[i : i + 1], {"proba": p}))
    log.flush()
    mon = services.monitoring
    mon.set_reference("clf@champion", path=world.ref_file)
    truth = (world.base_x[:, 0] + world.base_x[:, 1] > 0).astype(int)
    mon.add_feedback([FeedbackItem(f"b{i}", int(truth[i])) for i in range(100)])
    ev = mon.evaluate("clf@champion", since=T0, until=T0 + 500)
    cmp = ev.challenger
    assert cmp is not None
    assert (cmp.champion_version, cmp.challenger_version, cmp.paired_rows) == (1, 2, 200)
    assert cmp.agreement == pytest.approx(160 / 200)
    assert (cmp.labelled, cmp.champion_only_right, cmp.challenger_only_right) == (100, 40, 0)
    assert cmp.better == "champion" and cmp.p_value is not None and cmp.p_value < 1e-6
    html = mon.report("clf@champion", since=T0, until=T0 + 500)
    assert "McNemar" in html and "80.0%" in html
