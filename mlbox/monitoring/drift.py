"""Drift verdicts per column of two frames: which test, its statistic, p-value, threshold, verdict.

Defaults follow what an Evidently user expects: a float column is numeric whatever its
distinct count (a constant float is a measurement that happens not to vary, not one
category), an integer column with more than `CATEGORICAL_MAX_UNIQUE` distinct values is
numeric, anything else (text, bools, integers with few values) categorical;
small references (at most `SMALL_N` rows) get a significance test (KS,
chi-squared at alpha 0.05), large ones a distance with a threshold (normed
Wasserstein, Jensen–Shannon at 0.1), because at a million rows every test
finds a negligible shift significant. Every choice can be overridden per column.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import msgspec
import numpy as np

from mlbox.monitoring import stats
from mlbox.store.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["numeric", "categorical"]

SMALL_N = 1000
CATEGORICAL_MAX_UNIQUE = 5
ALPHA = 0.05

TESTS: dict[str, tuple[Kind | None, float, bool]] = {
    # name: (kind it needs (None: any), default threshold, gives a p-value)
    "ks": ("numeric", ALPHA, True),
    "wasserstein": ("numeric", 0.1, False),
    "psi": ("numeric", 0.1, False),
    "chi2": (None, ALPHA, True),
    "jensenshannon": (None, 0.1, False),
}


class Verdict(msgspec.Struct, frozen=True):
    """One column's drift check. ``threshold`` is alpha for a test with a p-value (drifted when
    ``p_value < threshold``), else the distance at which it drifts (``statistic >= threshold``)."""

    column: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    kind: Kind = "numeric"
    n_reference: int = 0
    n_current: int = 0

    def public(self) -> dict[str, object]:
        """The keys ``mlbox monitor drift --json`` prints, and only those."""
        return {
            "column": self.column,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "drifted": self.drifted,
        }


def severity(v: Verdict) -> float:
    """How far past (above 1) or below its threshold a verdict is, comparable across tests."""
    if v.p_value is not None:
        p = max(v.p_value, 1e-300)
        return math.log10(p) / math.log10(v.threshold)
    if not math.isfinite(v.statistic):
        return math.inf
    return v.statistic / v.threshold if v.threshold > 0 else math.inf


def column_kind(values: pd.Series) -> Kind:
    """Numeric when its dtype is a float, or an integer with more than a handful of distinct
    values; text and bools are categorical. The one rule: profiles, the framed drift and the
    streamed window scan all take their kinds from it."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "categorical"
    if pd.api.types.is_float_dtype(values):
        return "numeric"
    head = values.iloc[:10_000]  # more than a handful there is enough; a million-row count is not free
    if head.nunique(dropna=True) > CATEGORICAL_MAX_UNIQUE:
        return "numeric"
    return "numeric" if values.nunique(dropna=True) > CATEGORICAL_MAX_UNIQUE else "categorical"


def default_test(kind: Kind, n_reference: int) -> str:
    if kind == "numeric":
        return "ks" if n_reference <= SMALL_N else "wasserstein"
    return "chi2" if n_reference <= SMALL_N else "jensenshannon"


def check_test(column: str, test: str, kind: Kind) -> None:
    if test not in TESTS:
        raise InvalidInput(
            f"unknown drift test {test!r} for column {column!r} (one of {', '.join(TESTS)})", field="tests"
        )
    needs = TESTS[test][0]
    if needs is not None and needs != kind:
        raise InvalidInput(f"test {test!r} needs a numeric column; {column!r} is {kind}", field="tests")


def _numeric(values: pd.Series) -> np.ndarray:
    a = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return a[np.isfinite(a)]


def _counts(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each side's counts over the union of categories (hash-based: fast on millions of rows)."""
    r = reference.astype("string").value_counts(dropna=True)
    c = current.astype("string").value_counts(dropna=True)
    union = r.index.union(c.index)
    return (
        r.reindex(union, fill_value=0).to_numpy(np.int64),
        c.reindex(union, fill_value=0).to_numpy(np.int64),
    )


def verdict(
    column: str,
    reference: pd.Series,
    current: pd.Series,
    *,
    test: str | None = None,
    threshold: float | None = None,
    kind: Kind | None = None,
) -> Verdict:
    """One column's verdict; `InvalidInput` naming the column when a side has no values."""
    kind = kind or column_kind(reference)
    if kind == "numeric":
        ref, cur = _numeric(reference), _numeric(current)
        n_ref, n_cur = ref.size, cur.size
    else:
        r_counts, c_counts = _counts(reference, current)
        n_ref, n_cur = int(r_counts.sum()), int(c_counts.sum())
    for side, n in (("reference", n_ref), ("current", n_cur)):
        if n == 0:
            raise InvalidInput(f"column {column!r} has no values in the {side} data", field=column)
    test = test or default_test(kind, n_ref)
    check_test(column, test, kind)
    _, default_threshold, has_p = TESTS[test]
    limit = default_threshold if threshold is None else float(threshold)
    p: float | None = None
    if test == "ks":
        stat, p = stats.ks_2samp(ref, cur)
    elif test == "wasserstein":
        stat = stats.wasserstein_normed(ref, cur)
    elif test == "psi":
        stat = stats.psi(ref, cur)
    else:
        if kind == "numeric":  # a categorical test asked of a numeric column: its values are the categories
            r_counts, c_counts = _counts(reference, current)
        if test == "chi2":
            stat, p = stats.chi2_counts(r_counts, c_counts)
        else:
            stat = stats.jensenshannon_counts(r_counts, c_counts)
    drifted = (p < limit) if has_p and p is not None else stat >= limit
    return Verdict(column, test, float(stat), p, limit, bool(drifted), kind, int(n_ref), int(n_cur))


def drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    skip_empty: bool = False,
) -> list[Verdict]:
    """A verdict per column (the reference's columns by default, in their order).

    ``tests`` and ``thresholds`` override the defaults per column; a column the current data
    lacks, an unknown test or a test that does not fit the column is an `InvalidInput`.
    ``skip_empty`` leaves out a column with no values on a side instead of failing.
    """
    if reference.shape[0] == 0:
        raise InvalidInput("the reference has no rows", field="reference")
    if current.shape[0] == 0:
        raise InvalidInput("the current data has no rows", field="current")
    names = list(columns) if columns else [str(c) for c in reference.columns]
    for side, frame in (("reference", reference), ("current", current)):
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise InvalidInput(
                f"the {side} data has no column {', '.join(map(repr, missing))}", field="columns"
            )
    for mapping, what in ((tests or {}, "tests"), (thresholds or {}, "thresholds")):
        unknown = [c for c in mapping if c not in names]
        if unknown:
            raise InvalidInput(
                f"{what} names columns not checked: {', '.join(map(repr, unknown))}", field=what
            )
    out = []
    for name in names:
        try:
            out.append(
                verdict(
                    name,
                    reference[name],
                    current[name],
                    test=(tests or {}).get(name),
                    threshold=(thresholds or {}).get(name),
                )
            )
        except InvalidInput as exc:
            if skip_empty and exc.field == name:
                continue
            raise
    return out


def by_severity(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """Most drifted first."""
    return sorted(verdicts, key=severity, reverse=True)


def share_drifted(verdicts: Sequence[Verdict]) -> float:
    return sum(v.drifted for v in verdicts) / len(verdicts) if verdicts else 0.0
