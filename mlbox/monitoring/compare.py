"""Champion vs challenger on the shadow traffic both answered, and bias per segment: pure.

McNemar's test compares two classifiers on the same labelled rows through the
rows only one of them got right (``b``: champion only, ``c``: challenger
only): exact two-sided binomial p-value while ``b + c`` is small, the
continuity-corrected chi-squared past `MCNEMAR_EXACT_MAX` (statsmodels'
``mcnemar(exact=...)``). The bias gaps are fairlearn's definitions: the
demographic-parity difference is the largest gap between groups' selection
rates; the equalized-odds difference the larger of the largest gaps in true
and false positive rates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

MCNEMAR_EXACT_MAX = 25


class Comparison(msgspec.Struct, frozen=True):
    champion_version: int
    challenger_version: int
    paired_rows: int
    agreement: float
    labelled: int
    champion_accuracy: float | None
    challenger_accuracy: float | None
    champion_only_right: int
    challenger_only_right: int
    mcnemar_statistic: float | None
    p_value: float | None
    better: str | None
    """``challenger`` when it is right more often and the difference is significant at 0.05."""


def _key(value: Any) -> str:
    """One spelling per label: 1, 1.0 and "1" (a label column made float by a missing value) match."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)


def mcnemar(b: int, c: int) -> tuple[float, float]:
    """(statistic, two-sided p-value) from the discordant counts."""
    n = b + c
    if n == 0:
        return 0.0, 1.0
    if n <= MCNEMAR_EXACT_MAX:
        from scipy.stats import binom

        k = min(b, c)
        return float(k), float(min(1.0, 2 * binom.cdf(k, n, 0.5)))
    from scipy.stats import chi2

    stat = (abs(b - c) - 1) ** 2 / n
    return float(stat), float(chi2.sf(stat, 1))


def compare(
    champion_version: int,
    challenger_version: int,
    champion_pred: npt.ArrayLike,
    challenger_pred: npt.ArrayLike,
    labels: Sequence[Any],
    labelled: npt.ArrayLike,
    alpha: float = 0.05,
) -> Comparison:
    """Both models' predictions on the same rows (and the labels that arrived)."""
    a = np.asarray(champion_pred)
    b = np.asarray(challenger_pred)
    mask = np.asarray(labelled, dtype=bool)
    agreement = float(np.mean(a == b)) if a.size else math.nan
    if not mask.any():
        return Comparison(
            champion_version,
            challenger_version,
            int(a.size),
            agreement,
            0,
            None,
            None,
            0,
            0,
            None,
            None,
            None,
        )
    y = np.asarray(labels, dtype=object)[mask]
    right_a = np.asarray([_key(p) == _key(t) for p, t in zip(a[mask], y, strict=True)])
    right_b = np.asarray([_key(p) == _key(t) for p, t in zip(b[mask], y, strict=True)])
    only_a = int(np.sum(right_a & ~right_b))
    only_b = int(np.sum(right_b & ~right_a))
    stat, p = mcnemar(only_a, only_b)
    better = None
    if p < alpha:
        better = "challenger" if only_b > only_a else "champion"
    return Comparison(
        champion_version,
        challenger_version,
        int(a.size),
        agreement,
        int(mask.sum()),
        float(right_a.mean()),
        float(right_b.mean()),
        only_a,
        only_b,
        stat,
        p,
        better,
    )


class SegmentRates(msgspec.Struct, frozen=True):
    segment: str
    rows: int
    selection_rate: float
    true_positive_rate: float | None
    false_positive_rate: float | None
    accuracy: float | None


class Bias(msgspec.Struct, frozen=True):
    column: str
    positive: str
    segments: list[SegmentRates]
    demographic_parity_difference: float
    equalized_odds_difference: float | None


def bias(
    column: str,
    segments: Sequence[Any],
    predictions: Sequence[Any],
    labels: Sequence[Any] | None,
    positive: Any,
) -> Bias:
    """Per-segment rates of predicting ``positive`` and, where labels exist, TPR/FPR/accuracy;
    fairlearn's demographic-parity and equalized-odds differences over them."""
    seg = np.asarray([str(s) for s in segments])
    favourable = _key(positive)  # 1, 1.0 and "1" alike: a label column with gaps is made float
    pred = np.asarray([_key(p) == favourable for p in predictions])
    lab = None if labels is None else [None if v is None or v != v else _key(v) == favourable for v in labels]
    groups: list[SegmentRates] = []
    tprs: list[float] = []
    fprs: list[float] = []
    for g in sorted(set(seg.tolist())):
        idx = np.flatnonzero(seg == g)
        tpr = fpr = acc = None
        if lab is not None:
            known = [i for i in idx if lab[i] is not None]
            if known:
                y = np.asarray([lab[i] for i in known], dtype=bool)
                p = pred[known]
                acc = float(np.mean(y == p))
                if y.any():
                    tpr = float(p[y].mean())
                    tprs.append(tpr)
                if (~y).any():
                    fpr = float(p[~y].mean())
                    fprs.append(fpr)
        groups.append(SegmentRates(g, int(idx.size), float(pred[idx].mean()), tpr, fpr, acc))
    rates = [g.selection_rate for g in groups]
    dp = float(max(rates) - min(rates)) if rates else 0.0
    eo = None
    if len(tprs) >= 2 or len(fprs) >= 2:
        gaps = [max(v) - min(v) for v in (tprs, fprs) if len(v) >= 2]
        eo = float(max(gaps))
    return Bias(column, str(positive), groups, dp, eo)
