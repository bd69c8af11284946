"""Two-sample drift statistics as pure, vectorised numpy functions.

Each one compares a reference sample with a current one and returns
``(statistic, p_value)`` (``p_value`` None for distances). They equal scipy's
functions on the same data (tests/test_monitoring_stats.py compares them);
scipy is only asked for the tail of a distribution (`kstwo`, `chi2`), imported
where used so CLI start-up stays light.

Why these tests: the two-sample chi-squared over a 2 x K contingency table is
the right categorical test, since both samples carry sampling noise; a
goodness-of-fit chi-squared that treats the reference frequencies as exact
flags far more than alpha of unshifted columns.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

PSI_BINS = 10
PSI_EPS = 1e-4
"""Proportions are floored here so an empty bin does not make PSI infinite."""


def _finite(values: npt.ArrayLike) -> FloatArray:
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def ecdf_gaps(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The distinct values of two sorted samples and ``ECDF_a - ECDF_b`` at each of them.

    A stable argsort of the two concatenated sorted runs is a linear merge (timsort finds the
    runs), and cumulative counts give both ECDFs without a binary search per point.
    """
    values = np.concatenate([a, b])
    order = np.argsort(values, kind="stable")
    merged = values[order]
    from_a = order < a.size
    gap = np.cumsum(from_a) / a.size - np.cumsum(~from_a) / b.size
    last = np.ones(merged.size, dtype=bool)  # an ECDF steps after the last of equal values
    last[:-1] = merged[1:] != merged[:-1]
    return merged[last], gap[last]


def ks_2samp(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """Two-sided two-sample Kolmogorov–Smirnov: the largest gap between the two ECDFs, and
    Smirnov's asymptotic p-value (scipy's ``ks_2samp(..., method="asymp")``)."""
    a = np.sort(_finite(reference))
    b = np.sort(_finite(current))
    n1, n2 = a.size, b.size
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one finite value")
    _, gap = ecdf_gaps(a, b)
    d = float(np.max(np.abs(gap)))
    from scipy.stats import kstwo

    m, n = max(n1, n2), min(n1, n2)
    en = m * n / (m + n)
    p = float(np.clip(kstwo.sf(d, np.round(en)), 0.0, 1.0))
    return d, p


def wasserstein(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """The first Wasserstein (earth mover's) distance between the two empirical distributions
    (scipy's ``wasserstein_distance``): the area between the two ECDFs."""
    a = np.sort(_finite(reference))
    b = np.sort(_finite(current))
    if a.size == 0 or b.size == 0:
        raise ValueError("both samples need at least one finite value")
    points, gap = ecdf_gaps(a, b)
    return float(np.sum(np.abs(gap[:-1]) * np.diff(points)))


def wasserstein_normed(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Wasserstein distance in units of the reference's standard deviation (as Evidently
    scores large numeric columns), so one threshold fits every scale."""
    a = _finite(reference)
    std = float(np.std(a)) if a.size else 0.0
    distance = wasserstein(a, current)
    if std > 0:
        return distance / std
    return 0.0 if distance == 0 else float("inf")


def quantile_edges(reference: npt.ArrayLike, bins: int = PSI_BINS) -> FloatArray:
    """Inner bin edges at the reference's quantiles (duplicates dropped): each reference bin
    holds about the same share, which is how PSI is usually binned."""
    a = _finite(reference)
    if a.size == 0:
        return np.empty(0)
    inner = np.quantile(a, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(inner)


def binned(values: npt.ArrayLike, edges: FloatArray) -> npt.NDArray[np.int64]:
    """Counts of finite values in the bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)``."""
    a = _finite(values)
    return np.bincount(np.searchsorted(edges, a, side="left"), minlength=edges.size + 1).astype(np.int64)


def psi_counts(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Population stability index of two count vectors over the same bins:
    ``sum((c - r) * ln(c / r))`` over proportions floored at `PSI_EPS`."""
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.sum() == 0 or c.sum() == 0:
        raise ValueError("both samples need at least one value")
    rp = np.maximum(r / r.sum(), PSI_EPS)
    cp = np.maximum(c / c.sum(), PSI_EPS)
    return float(np.sum((cp - rp) * np.log(cp / rp)))


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = PSI_BINS) -> float:
    """PSI of a numeric column over `bins` quantile bins of the reference."""
    edges = quantile_edges(reference, bins)
    return psi_counts(binned(reference, edges), binned(current, edges))


def category_counts(
    reference: npt.ArrayLike, current: npt.ArrayLike
) -> tuple[list[object], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The union of categories seen in either sample and each sample's counts over it
    (missing values, None and NaN, are not a category)."""
    ref = _categories(reference)
    cur = _categories(current)
    cats, inverse = np.unique(np.concatenate([ref, cur]), return_inverse=True)
    r = np.bincount(inverse[: ref.size], minlength=cats.size).astype(np.int64)
    c = np.bincount(inverse[ref.size :], minlength=cats.size).astype(np.int64)
    return cats.tolist(), r, c


def _categories(values: npt.ArrayLike) -> npt.NDArray[np.str_]:
    a = np.asarray(values, dtype=object).ravel()
    keep = np.array([v is not None and not (isinstance(v, float) and v != v) for v in a], dtype=bool)
    return a[keep].astype(str) if a.size else np.empty(0, dtype=str)


def chi2_counts(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """Pearson's chi-squared test of independence on the 2 x K table of two count vectors
    (scipy's ``chi2_contingency``, with Yates' correction when K is 2)."""
    observed = np.vstack([np.asarray(reference, np.float64), np.asarray(current, np.float64)])
    observed = observed[:, observed.sum(axis=0) > 0]
    if observed.shape[1] < 2:
        return 0.0, 1.0  # one category on both sides: nothing can differ
    if (observed.sum(axis=1) == 0).any():
        raise ValueError("both samples need at least one value")
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True) / observed.sum()
    dof = observed.shape[1] - 1
    if dof == 1:
        diff = np.abs(observed - expected)
        diff = np.maximum(diff - np.minimum(0.5, diff), 0.0)  # Yates, never past zero (as scipy)
    else:
        diff = observed - expected
    stat = float(np.sum(diff**2 / expected))
    from scipy.stats import chi2

    return stat, float(chi2.sf(stat, dof))


def chi2_2samp(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """The two-sample chi-squared test of a categorical column."""
    _, r, c = category_counts(reference, current)
    return chi2_counts(r, c)


def jensenshannon_counts(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Jensen–Shannon distance (natural log, so in [0, sqrt(ln 2)]) between two count vectors
    over the same categories (scipy's ``spatial.distance.jensenshannon``)."""
    p = np.asarray(reference, dtype=np.float64)
    q = np.asarray(current, dtype=np.float64)
    if p.sum() == 0 or q.sum() == 0:
        raise ValueError("both samples need at least one value")
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2
    js = (_rel_entr(p, m) + _rel_entr(q, m)) / 2
    return float(np.sqrt(max(js, 0.0)))


def _rel_entr(p: FloatArray, q: FloatArray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def jensenshannon(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Jensen–Shannon distance of a categorical column's two frequency distributions."""
    _, r, c = category_counts(reference, current)
    return jensenshannon_counts(r, c)
