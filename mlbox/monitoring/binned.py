"""Drift of large windows from histograms: a column is counted once into fine bins, and the
statistics come from the binned ECDFs (numeric) or category counts, never from the rows.

Why: the exact tests sort both samples (KS, Wasserstein): 10 million logged rows x 25 columns
is minutes of sorting. Counting into the reference's grid is one pass per column that can be
done batch by batch as the Parquet is read (`WindowHistograms`), and merged across batches,
files or days by adding counts. With `FINE_BINS` uniform bins over the reference's range the
binned Wasserstein distance is within one bin width of the exact one, and the binned KS
statistic within the largest share of a bin; values outside the reference's range fall in two
open bins whose extent is the window's own minimum and maximum. PSI groups the fine bins into
about `stats.PSI_BINS` groups of equal reference share (its usual quantile binning).
Categorical columns are counted per category (Arrow's ``value_counts``), so chi-squared and
Jensen–Shannon are exact. Small windows keep the exact tests (`mlbox.monitoring.drift`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mlbox.monitoring import stats
from mlbox.store.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from mlbox.monitoring.drift import Kind, Verdict

FINE_BINS = 1024
LARGE_WINDOW = 200_000
"""Rows past which a window's numeric drift is computed from histograms."""

Counts = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Grid:
    """Uniform bins over the reference's range: bin 0 holds values under ``lo``, bins
    ``1..bins`` the range, bin ``bins + 1`` the reference's maximum and past it."""

    lo: float
    width: float
    bins: int

    @property
    def hi(self) -> float:
        return self.lo + self.width * self.bins


def grid(reference: npt.ArrayLike, bins: int = FINE_BINS) -> Grid:
    a = np.asarray(reference, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise ValueError("the reference needs at least one finite value")
    lo, hi = float(a.min()), float(a.max())
    if hi > lo:
        return Grid(lo, (hi - lo) / bins, bins)
    # a constant reference: a range a billionth of its value wide, so that any other value
    # falls in an open bin (a unit width put 0.17 and 0.3 in one bin: a shift read as none)
    return Grid(lo, max(abs(lo), 1.0) * 1e-9 / bins, bins)


@functools.cache
def _kernel() -> Any:
    """The counting loop, compiled by numba on first use (cached on disk after)."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def count(
        a: Any, counts: Any, lo: float, inv_width: float, bins: int
    ) -> tuple[int, int, float, float, float]:
        nan = 0
        inf = 0
        smallest = np.inf
        largest = -np.inf
        total = 0.0
        top = bins + 1
        for i in range(a.size):
            x = float(a[i])
            if x != x:
                nan += 1
                continue
            if x == np.inf or x == -np.inf:
                inf += 1
                continue
            k = (x - lo) * inv_width + 1.0  # under the range -> 0, the range -> 1..bins
            j = 0 if k < 1.0 else (top if k >= top else int(k))
            counts[j] += 1
            smallest = min(smallest, x)
            largest = max(largest, x)
            total += x
        return nan, inf, smallest, largest, total

    return count


@dataclass
class Histogram:
    """One numeric column's counts on a `Grid`, with what the counts leave out."""

    grid: Grid
    counts: Counts
    missing: int = 0
    """Nulls and NaN."""
    infinite: int = 0
    minimum: float = float("inf")
    maximum: float = float("-inf")
    total: float = 0.0

    @classmethod
    def empty(cls, g: Grid) -> Histogram:
        return cls(g, np.zeros(g.bins + 2, np.int64))

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def add(self, values: npt.ArrayLike) -> None:
        """Count these values in (a batch; NaN counts as missing, ±inf apart): one compiled pass."""
        a = np.asarray(values)
        if a.dtype.kind not in "fiu":
            a = a.astype(np.float64)
        if a.size == 0:
            return
        g = self.grid
        nan, inf, lo, hi, total = _kernel()(a, self.counts, g.lo, 1.0 / g.width, g.bins)
        self.missing += int(nan)
        self.infinite += int(inf)
        self.minimum = min(self.minimum, float(lo))
        self.maximum = max(self.maximum, float(hi))
        self.total += float(total)

    def merge(self, other: Histogram) -> Histogram:
        if other.grid != self.grid:
            raise ValueError("histograms on different grids do not merge")
        return Histogram(
            self.grid,
            self.counts + other.counts,
            self.missing + other.missing,
            self.infinite + other.infinite,
            min(self.minimum, other.minimum),
            max(self.maximum, other.maximum),
            self.total + other.total,
        )


def _ecdf_gap(ref: Histogram, cur: Histogram) -> npt.NDArray[np.float64]:
    if ref.count == 0 or cur.count == 0:
        raise ValueError("both histograms need at least one finite value")
    return np.cumsum(ref.counts) / ref.count - np.cumsum(cur.counts) / cur.count


def ks(ref: Histogram, cur: Histogram) -> tuple[float, float]:
    """The KS statistic at the bin boundaries (at most the exact one, short of it by no more than
    a bin's share) and its asymptotic p-value, as `stats.ks_2samp` computes it."""
    from scipy.stats import kstwo

    d = float(np.max(np.abs(_ecdf_gap(ref, cur))))
    m, n = max(ref.count, cur.count), min(ref.count, cur.count)
    p = float(np.clip(kstwo.sf(d, np.round(m * n / (m + n))), 0.0, 1.0))
    return d, p


def wasserstein(ref: Histogram, cur: Histogram) -> float:
    """The area between the two ECDFs, each bin's part by the trapezoid of the gaps at its ends
    (the open bins reach to the smallest and largest value either side saw)."""
    gap = _ecdf_gap(ref, cur)
    g = ref.grid
    widths = np.full(g.bins + 2, g.width)
    widths[0] = g.lo - min(ref.minimum, cur.minimum, g.lo)
    widths[-1] = max(ref.maximum, cur.maximum, g.hi) - g.hi
    before = np.concatenate([[0.0], gap[:-1]])
    return float(np.sum(widths * np.abs(before + gap) / 2))


def wasserstein_normed(ref: Histogram, cur: Histogram, ref_std: float) -> float:
    distance = wasserstein(ref, cur)
    if ref_std > 0:
        return distance / ref_std
    return 0.0 if distance == 0 else float("inf")


def psi(ref: Histogram, cur: Histogram, groups: int = stats.PSI_BINS) -> float:
    """PSI over the fine bins grouped into about ``groups`` of equal reference share."""
    share = np.cumsum(ref.counts) / max(ref.count, 1)
    group = np.minimum((share * groups - 1e-9).astype(np.int64), groups - 1)
    group = np.maximum.accumulate(np.clip(group, 0, None))
    r = np.bincount(group, weights=ref.counts, minlength=groups)
    c = np.bincount(group, weights=cur.counts, minlength=groups)
    return stats.psi_counts(r, c)


@dataclass
class WindowHistograms:
    """A window's histograms (numeric, on the reference's grids) and category counts, added to
    batch by batch (`add_batch`) as Arrow record batches of the typed log are read."""

    grids: Mapping[str, Grid]
    categorical: Iterable[str] = ()
    rows: int = 0
    numeric: dict[str, Histogram] = field(default_factory=dict)
    categories: dict[str, dict[str, int]] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.numeric = {c: Histogram.empty(g) for c, g in self.grids.items()}
        self.categories = {c: {} for c in self.categorical}
        self.missing = dict.fromkeys(self.categories, 0)

    def add_batch(self, batch: pa.RecordBatch) -> None:
        import pyarrow as pa

        self.rows += batch.num_rows
        names = set(batch.schema.names)
        for name, hist in self.numeric.items():
            if name not in names:
                hist.missing += batch.num_rows
                continue
            column = batch.column(name)
            if column.null_count:
                hist.missing += column.null_count
                column = column.drop_null()
            if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
                hist.add(column.to_numpy(zero_copy_only=False))
            else:  # text where numbers were: unusable values
                hist.missing += len(column)
        for name, counts in self.categories.items():
            if name not in names:
                self.missing[name] += batch.num_rows
                continue
            column = batch.column(name)
            self.missing[name] += column.null_count
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            for item in column.value_counts().to_pylist():
                value = item["values"]
                if value is None:
                    continue
                if isinstance(value, float) and value != value:  # NaN: missing, as pandas counts it
                    self.missing[name] += int(item["counts"])
                    continue
                key = str(value)  # as pandas' astype("string") spells it (True, 1, 1.5)
                counts[key] = counts.get(key, 0) + int(item["counts"])


def scan(
    files: list[Any], grids: Mapping[str, Grid], categorical: Iterable[str], filter: Any = None
) -> WindowHistograms:
    """Histograms of the typed log files (`mlbox.serving.predlog`) in one pass, Arrow decoding
    the Parquet on its threads; ``filter`` is a ``pyarrow.compute`` expression (the window)."""
    import pyarrow.dataset as ds

    out = WindowHistograms(grids, list(categorical))
    if not files:
        return out
    dataset = ds.dataset([str(f) for f in files], format="parquet")
    wanted = [c for c in (*grids, *out.categories) if c in dataset.schema.names]
    for batch in dataset.to_batches(columns=wanted, filter=filter, batch_size=1 << 20):
        out.add_batch(batch)
    return out


def category_counts(reference: Mapping[str, int], current: Mapping[str, int]) -> tuple[Counts, Counts]:
    keys = sorted(set(reference) | set(current))
    return (
        np.array([reference.get(k, 0) for k in keys], np.int64),
        np.array([current.get(k, 0) for k in keys], np.int64),
    )


def drift_of_files(
    reference: pd.DataFrame,
    files: list[Any],
    *,
    columns: Iterable[str],
    kinds: Mapping[str, Kind],
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    filter: Any = None,
    skip_empty: bool = False,
) -> tuple[int, list[Verdict]]:
    """(window rows, a verdict per column) for the typed log ``files`` against ``reference``,
    from histograms: the defaults and overrides of `mlbox.monitoring.drift.verdict`, numeric
    tests computed on the binned ECDFs, categorical ones on exact category counts."""
    names = list(columns)
    refs = reference_histograms(reference, names, kinds, skip_empty)
    window = scan(
        files, {c: refs[c][0].grid for c in refs}, [c for c in names if kinds[c] != "numeric"], filter
    )
    return window.rows, verdicts(reference, refs, window, names, kinds, tests, thresholds, skip_empty)


def drift_frames(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    kinds: Mapping[str, Kind],
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    skip_empty: bool = False,
) -> list[Verdict]:
    """`drift_of_files` for a window already in memory (the reference's columns, in order)."""
    import pyarrow as pa

    names = [str(c) for c in reference.columns]
    refs = reference_histograms(reference, names, kinds, skip_empty)
    window = WindowHistograms({c: refs[c][0].grid for c in refs}, [c for c in names if kinds[c] != "numeric"])
    arrays = {}
    for c in names:
        values = current[c]
        if kinds[c] == "numeric":
            try:
                arrays[c] = pa.array(values.to_numpy(dtype=np.float64, na_value=np.nan))
            except (TypeError, ValueError):  # text where numbers were: every value unusable
                arrays[c] = pa.nulls(len(values), pa.float64())
        else:
            arrays[c] = pa.array(values.astype("string").to_numpy(dtype=object, na_value=None), pa.string())
    window.add_batch(pa.RecordBatch.from_pydict(arrays) if arrays else pa.record_batch([]))
    return verdicts(reference, refs, window, names, kinds, tests, thresholds, skip_empty)


def reference_histograms(
    reference: pd.DataFrame, names: list[str], kinds: Mapping[str, Kind], skip_empty: bool
) -> dict[str, tuple[Histogram, float]]:
    refs: dict[str, tuple[Histogram, float]] = {}
    for c in names:
        if kinds[c] != "numeric":
            continue
        values = reference[c].to_numpy(dtype=np.float64, na_value=np.nan)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            if skip_empty:
                continue
            raise InvalidInput(f"column {c!r} has no values in the reference data", field=c)
        h = Histogram.empty(grid(finite))
        h.add(finite)
        refs[c] = (h, float(np.std(finite)))
    return refs


def verdicts(
    reference: pd.DataFrame,
    refs: Mapping[str, tuple[Histogram, float]],
    window: WindowHistograms,
    names: list[str],
    kinds: Mapping[str, Kind],
    tests: Mapping[str, str] | None,
    thresholds: Mapping[str, float] | None,
    skip_empty: bool,
) -> list[Verdict]:
    from mlbox.monitoring.drift import TESTS, Verdict, check_test, default_test

    out = []
    for c in names:
        kind = kinds[c]
        test = (tests or {}).get(c)
        if kind == "numeric":
            if c not in refs:
                continue  # no reference values, skipped (`reference_histograms` raised otherwise)
            ref, std = refs[c]
            cur = window.numeric[c]
            n_ref, n_cur = ref.count, cur.count
        else:
            r_counts, c_counts = category_counts(
                {str(k): int(v) for k, v in reference[c].dropna().astype("string").value_counts().items()},
                window.categories[c],
            )
            n_ref, n_cur = int(r_counts.sum()), int(c_counts.sum())
        empty = "reference" if n_ref == 0 else "current" if n_cur == 0 else None
        if empty is not None:
            if skip_empty:
                continue
            raise InvalidInput(f"column {c!r} has no values in the {empty} data", field=c)
        test = test or default_test(kind, n_ref)
        check_test(c, test, kind)
        if kind == "numeric" and test in ("chi2", "jensenshannon"):
            raise InvalidInput(
                f"test {test!r} on the numeric column {c!r} needs a small window", field="tests"
            )
        _, default_threshold, has_p = TESTS[test]
        limit = default_threshold if (thresholds or {}).get(c) is None else float((thresholds or {})[c])
        p: float | None = None
        if test == "ks":
            stat, p = ks(ref, cur)
        elif test == "wasserstein":
            stat = wasserstein_normed(ref, cur, std)
        elif test == "psi":
            stat = psi(ref, cur)
        elif test == "chi2":
            stat, p = stats.chi2_counts(r_counts, c_counts)
        else:
            stat = stats.jensenshannon_counts(r_counts, c_counts)
        drifted = (p < limit) if has_p and p is not None else stat >= limit
        out.append(Verdict(c, test, float(stat), p, limit, bool(drifted), kind, int(n_ref), int(n_cur)))
    return out
