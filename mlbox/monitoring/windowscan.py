"""A large window of the typed prediction log read once, in Arrow record batches, into what an
evaluation needs, without a pandas frame of its rows.

Why: a window of 10 million logged rows x 25 columns as a pandas frame
(`mlbox.monitoring.logframe.read_window`) costs tens of seconds and gigabytes before any check
runs, and every check is another pass over it. One pass over the typed Parquet segments
(`mlbox.serving.predlog`), Arrow decoding them on its threads, gives instead:

* per numeric column, in one compiled loop (`_scan_values`): the drift histogram on the
  reference's grid (`mlbox.monitoring.binned`), the window profile's counts on the reference's
  bin edges, its missing / infinite / below / above counts (what data quality reads), and the
  rows whose modified z-score passes `profile.OUTLIER_Z` (`profile.outlier_scores`, row by row);
* per categorical column (and the prediction) the exact category counts, spelled as pandas'
  ``astype("string")`` spells them (the materialised path's counts);
* per row only the time (performance over time) and, for a classifier with probabilities, its
  top probability (the CBPE estimate), or for one output whether it is a non-integer number
  (which tells a regressor's first rows);
* the rows whose labels arrived (or that the challenger answered), with their prediction;
* a bounded uniform sample of rows for the report's distributions.

Each figure equals the materialised path's (tests compare them) but for float sums
(``total``, ``total_sq``) added batch by batch, and one caveat: whether a multi-column output
holds probabilities or logits (`logframe.read_outputs`) is decided per batch, not per window.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mlbox.monitoring.binned import FINE_BINS, Grid, Histogram, WindowHistograms, grid
from mlbox.monitoring.logframe import PREDICTION, PROBA, read_outputs
from mlbox.monitoring.profile import MAD_SCALE, OUTLIER_Z, ColumnProfile, Profile

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as pads

BATCH_ROWS = 1 << 18
"""Rows per Arrow batch: a quarter of the log's row groups keeps the peak near a gigabyte at 10M rows
(2.3 GB with whole row groups), for the same CPU."""
REPORT_ROWS = 100_000
"""Rows of a large window kept (a uniform sample) for the report's distributions."""


@functools.cache
def _kernel() -> Any:
    """The per-column loop, compiled by numba on first use (cached on disk after)."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def scan_values(
        a: Any,
        lo: float,
        inv_width: float,
        bins: int,
        hist: Any,
        lookup: Any,
        edges: Any,
        prof_counts: Any,
        ref_min: float,
        ref_max: float,
        med: float,
        mad: float,
        z: float,
        flags: Any,
    ) -> tuple[int, int, float, float, float, float, int, int]:
        nan = 0
        inf = 0
        below = 0
        above = 0
        smallest = np.inf
        largest = -np.inf
        total = 0.0
        total_sq = 0.0
        top = bins + 1
        do_hist = hist.size > 0
        do_prof = prof_counts.size > 0
        do_outliers = flags.size > 0
        m = edges.size
        near = z * mad / MAD_SCALE * (1.0 - 1e-9)  # under the score's rounding by far
        for i in range(a.size):
            x = float(a[i])
            if x != x:
                nan += 1
                continue
            if x == np.inf or x == -np.inf:
                inf += 1
                continue
            k = (x - lo) * inv_width + 1.0  # the fine bin: under the range -> 0, the range -> 1..bins
            j = 0 if k < 1.0 else (top if k >= top else int(k))
            if do_hist:
                hist[j] += 1
            if do_prof:
                b = lookup[j]  # the profile bin of every value in fine bin j, or -1: search
                if b < 0:  # numpy's searchsorted(edges, x, side="left")
                    left = 0
                    right = m
                    while left < right:
                        mid = (left + right) // 2
                        if edges[mid] < x:
                            left = mid + 1
                        else:
                            right = mid
                    b = left
                prof_counts[b] += 1
            if x < ref_min:
                below += 1
            if x > ref_max:
                above += 1
            if do_outliers:
                d = x - med
                if d > near or d < -near:  # only then can the score pass z: divide only those
                    score = abs(MAD_SCALE * d / mad)
                    if score > z and score != np.inf:
                        flags[i] = True
            smallest = min(smallest, x)
            largest = max(largest, x)
            total += x
            total_sq += x * x
        return nan, inf, smallest, largest, total, total_sq, below, above

    return scan_values


_NO_COUNTS = np.zeros(0, np.int64)
_NO_FLAGS = np.zeros(0, np.bool_)


def profile_lookup(g: Grid, edges: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Per fine bin of ``g``, the profile bin (``searchsorted(edges, x, "left")``) that every value
    counted in it falls in, or -1 where an edge lies in or near the fine bin (and in the two open
    bins): those values are searched one by one. A binary search per value was 8x the loop."""
    j = np.arange(g.bins + 2)
    left = g.lo + (j - 1) * g.width
    right = left + g.width
    margin = 1e-9 * max(abs(g.lo), abs(g.hi), g.width)  # far above the rounding of the bin's index
    out = np.searchsorted(edges, left - margin, side="right").astype(np.int64)
    near = np.searchsorted(edges, right + margin, side="right") > out
    out[near] = -1
    out[0] = out[-1] = -1
    return out


@dataclass
class NumericColumn:
    """One numeric column of the window: its histogram on a drift grid (or none), the profile
    counts on the reference's edges, and what data quality reads."""

    histogram: Histogram | None
    edges: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]
    ref_min: float
    ref_max: float
    median: float | None
    mad: float | None
    count: int = 0
    missing: int = 0
    infinite: int = 0
    below: int = 0
    above: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf
    total: float = 0.0
    total_sq: float = 0.0
    grid: Grid = field(init=False)
    """The drift histogram's, or fine bins over the reference's range (for `profile_lookup`)."""
    lookup: npt.NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        if self.histogram is not None:
            self.grid = self.histogram.grid
        elif math.isfinite(self.ref_min) and math.isfinite(self.ref_max):
            self.grid = grid([self.ref_min, self.ref_max], FINE_BINS)
        else:
            self.grid = Grid(0.0, 1.0, 1)
        self.lookup = profile_lookup(self.grid, self.edges) if self.counts.size else _NO_COUNTS

    def add(self, values: np.ndarray, flags: npt.NDArray[np.bool_] | None) -> None:
        g = self.grid
        nan, inf, lo, hi, total, total_sq, below, above = _kernel()(
            values,
            g.lo,
            1.0 / g.width,
            g.bins,
            self.histogram.counts if self.histogram is not None else _NO_COUNTS,
            self.lookup,
            self.edges,
            self.counts,
            self.ref_min,
            self.ref_max,
            self.median if self.median is not None else 0.0,
            self.mad if self.mad else 1.0,
            OUTLIER_Z,
            flags if flags is not None and self.median is not None and self.mad else _NO_FLAGS,
        )
        self.missing += int(nan)
        self.infinite += int(inf)
        self.count += values.size - int(nan) - int(inf)
        self.below += int(below)
        self.above += int(above)
        self.minimum = min(self.minimum, float(lo))
        self.maximum = max(self.maximum, float(hi))
        self.total += float(total)
        self.total_sq += float(total_sq)
        if self.histogram is not None:
            h = self.histogram
            h.missing += int(nan)
            h.infinite += int(inf)
            h.minimum = min(h.minimum, float(lo))
            h.maximum = max(h.maximum, float(hi))
            h.total += float(total)

    def unusable(self, n: int) -> None:
        """``n`` values that are not numbers (text where numbers were): missing."""
        self.missing += n
        if self.histogram is not None:
            self.histogram.missing += n


@dataclass
class Plan:
    """What to gather from a window: set up by the service from the reference."""

    numeric: dict[str, NumericColumn]
    categorical: list[str]
    """Columns counted by category (the prediction's counts are always kept)."""
    keep: pd.DataFrame | None = None
    """``request_id`` and ``row`` of the rows to keep (`WindowScan.kept`): those with labels, or
    that the challenger answered."""
    row_columns: list[str] = field(default_factory=list)
    """Columns kept for every row (a bias segment, or the keys to look one up by)."""
    sample_rows: int = 0


@dataclass
class WindowScan:
    """What one pass over a window gathered (`scan`)."""

    rows: int
    columns: list[str]
    """The window's columns but the log's own (request id, time, ...), the prediction and its
    probabilities, in the materialised frame's order."""
    numeric: dict[str, NumericColumn]
    categories: dict[str, dict[str, int]]
    category_missing: dict[str, int]
    dtypes: dict[str, str]
    outliers: int
    ts_us: npt.NDArray[np.int64]
    top: npt.NDArray[np.float64] | None
    """Each row's largest class probability (a classifier's probabilities)."""
    non_integer: npt.NDArray[np.bool_] | None
    """Whether each row's single output is a float that is not a whole number."""
    has_prediction: bool
    proba_width: int
    outputs: set[str]
    """The prediction and its probabilities, where the log has outputs."""
    kept: pd.DataFrame
    """Rows with a label or a challenger's answer: ``_i`` (the row's position in the window),
    ``request_id``, ``row``, the prediction and probabilities, and `Plan.row_columns`."""
    row_values: dict[str, list[Any]]
    """`Plan.row_columns` and the prediction, for every row (only when asked)."""
    sample: pd.DataFrame

    def histograms(self, grids: Mapping[str, Grid], categorical: Sequence[str]) -> WindowHistograms:
        """The drift histograms of ``grids``' columns and ``categorical``'s counts."""
        out = WindowHistograms(grids, list(categorical))
        out.rows = self.rows
        for name in grids:
            h = self.numeric[name].histogram
            assert h is not None
            out.numeric[name] = h
        for name in categorical:
            out.categories[name] = self.categories.get(name, {})
            out.missing[name] = self.category_missing.get(name, self.rows)
        return out

    def profile(self, like: Profile) -> Profile:
        """The window's profile made like the reference's (its columns the window has)."""
        columns: dict[str, ColumnProfile] = {}
        for name, ref in like.columns.items():
            if name not in self.columns and name not in self.outputs:
                continue
            if ref.kind == "categorical":
                if name not in self.categories:
                    continue
                cats = self.categories[name]
                count = sum(cats.values())
                columns[name] = ColumnProfile(
                    "categorical",
                    self.dtypes.get(name, "object"),
                    count=count,
                    missing=self.rows - count,
                    categories=dict(sorted(cats.items(), key=lambda kv: -kv[1])),
                )
                continue
            col = self.numeric.get(name)
            if col is None:
                continue
            if self.dtypes.get(name) == "str":  # text where numbers were: every value unusable
                columns[name] = ColumnProfile("numeric", "str", missing=self.rows, edges=ref.edges, counts=[])
                continue
            columns[name] = ColumnProfile(
                "numeric",
                self.dtypes.get(name, "float64"),
                count=col.count,
                missing=col.missing,
                infinite=col.infinite,
                edges=list(ref.edges),
                counts=col.counts.tolist(),
                minimum=col.minimum if col.count else None,
                maximum=col.maximum if col.count else None,
                total=col.total,
                total_sq=col.total_sq,
                below=col.below if ref.minimum is not None else 0,
                above=col.above if ref.maximum is not None else 0,
            )
        return Profile(rows=self.rows, columns=columns)


def output_plan(out_columns: Sequence[str]) -> tuple[str, list[str]] | None:
    """How the window's prediction comes from the log's output columns (their names without
    ``out:``), as `logframe.read_outputs` reads them: ``("proba", columns)`` for the first output
    of several columns, else ``("single", [column])``; None without outputs."""
    groups: dict[str, list[str]] = {}
    for col in out_columns:
        base, sep, idx = col.rpartition("_")
        groups.setdefault(base if sep and idx.isdigit() else col, []).append(col)
    if not groups:
        return None
    for cols in groups.values():
        if len(cols) > 1:
            return "proba", cols
    return "single", [next(iter(groups.values()))[0]]


def category_key(value: Any) -> str:
    """A category as pandas' ``astype("string")`` spells it (the materialised path's counts)."""
    return str(value)


def _count_categories(column: pa.Array | pa.ChunkedArray, into: dict[str, int]) -> int:
    """Add a column's category counts; returns its missing values (nulls and NaN)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = column.null_count
    if pa.types.is_dictionary(column.type):
        indices = column.indices.to_numpy(zero_copy_only=False)
        valid = indices[~np.isnan(indices)] if indices.dtype.kind == "f" else indices
        counts = np.bincount(valid.astype(np.int64), minlength=len(column.dictionary))
        for value, n in zip(column.dictionary.to_pylist(), counts.tolist(), strict=True):
            if n and value is not None:
                key = category_key(value)
                into[key] = into.get(key, 0) + n
        return int(missing)
    for item in pc.value_counts(column).to_pylist():
        value = item["values"]
        if value is None:
            continue
        if isinstance(value, float) and value != value:
            missing += int(item["counts"])
            continue
        key = category_key(value)
        into[key] = into.get(key, 0) + int(item["counts"])
    return int(missing)


def _pandas_dtype(kind: pa.DataType, nulls: bool) -> str:
    """The dtype this Arrow type takes in the materialised window (polars' ``to_pandas``)."""
    import pyarrow as pa

    if pa.types.is_integer(kind):
        return "float64" if nulls else str(kind.to_pandas_dtype().__name__)
    if pa.types.is_floating(kind):
        return str(np.dtype(kind.to_pandas_dtype()))
    if pa.types.is_boolean(kind):
        return "object" if nulls else "bool"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
        return "str"
    return "object"


def unified_schema(files: Sequence[Path]) -> pa.Schema:
    """The columns of all ``files`` (a column one file lacks reads as nulls from it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")


@dataclass(frozen=True)
class Bounds:
    """A window of the log: ``[since, until)``, champion or shadow rows, one version
    (`logframe.read_window`'s bounds)."""

    since: float | None = None
    until: float | None = None
    shadow: bool | None = None
    version: int | None = None

    def _ts(self, t: float) -> int:
        """Microseconds as polars and Arrow compare them (the datetime's rounding)."""
        import pyarrow as pa

        return int(pa.scalar(datetime.fromtimestamp(t, UTC), pa.timestamp("us", tz="UTC")).value)

    @property
    def columns(self) -> list[str]:
        """The log's columns the bounds read."""
        cols = ["ts"] if self.since is not None or self.until is not None else []
        return cols + ["shadow"] * (self.shadow is not None) + ["version"] * (self.version is not None)

    def expression(self) -> pads.Expression | None:
        """The bounds as a dataset filter (to count rows and skip row groups by statistics)."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        ts_type = pa.timestamp("us", tz="UTC")
        parts = []
        if self.since is not None:
            parts.append(ds.field("ts") >= pa.scalar(self._ts(self.since), ts_type))
        if self.until is not None:
            parts.append(ds.field("ts") < pa.scalar(self._ts(self.until), ts_type))
        if self.shadow is not None:
            parts.append(ds.field("shadow") == self.shadow)
        if self.version is not None:
            parts.append(ds.field("version") == self.version)
        if not parts:
            return None
        out = parts[0]
        for p in parts[1:]:
            out = out & p
        return out

    def inside(self, batch: pa.RecordBatch) -> npt.NDArray[np.bool_] | None:
        """Which rows of ``batch`` are in the window; None when all are (nearly always: a batch
        filtered by Arrow is copied whole, which cost a tenth of the pass)."""
        import pyarrow as pa

        keep = np.ones(batch.num_rows, np.bool_)
        if self.since is not None or self.until is not None:
            ts = batch.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
            if self.since is not None:
                keep &= ts >= self._ts(self.since)
            if self.until is not None:
                keep &= ts < self._ts(self.until)
        if self.shadow is not None:
            keep &= batch.column("shadow").to_numpy(zero_copy_only=False) == self.shadow
        if self.version is not None:
            keep &= batch.column("version").to_numpy(zero_copy_only=False) == self.version
        return None if keep.all() else keep


def dataset(files: Sequence[Path], dictionary: Sequence[str] = ()) -> pads.Dataset:
    """The typed log files as one dataset over their unified columns; ``dictionary`` columns
    (text) read dictionary-encoded, as they are stored."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    schema = unified_schema(files)
    for name in dictionary:  # else the dataset casts them back to plain text
        i = schema.get_field_index(name)
        if i >= 0 and pa.types.is_string(schema.field(i).type):
            schema = schema.set(i, pa.field(name, pa.dictionary(pa.int32(), pa.string())))
    fmt = ds.ParquetFileFormat(
        read_options=ds.ParquetReadOptions(dictionary_columns=list(dictionary)),
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False),
    )  # no pre-buffering: a whole row group's compressed columns held beside the decoded batches
    return ds.dataset([str(f) for f in files], schema=schema, format=fmt)


def _stored(schema: pa.Schema, input_name: str) -> dict[str, str]:
    """The log's feature columns by their name in the window (``input_<j>`` renamed after a
    named tensor)."""
    from mlbox.serving.predlog import INPUT, OUT

    meta = {"request_id", "row", "version", "ts", "latency_ms", "shadow"}
    out = {}
    for c in schema.names:
        if c in meta or c.startswith(OUT):
            continue
        name = input_name + c[len(INPUT) :] if input_name != INPUT and c.startswith(f"{INPUT}_") else c
        out[name] = c
    return out


def window_columns(files: Sequence[Path], input_name: str, features: Sequence[str]) -> list[str]:
    """The window's columns but the log's own, the prediction and its probabilities, in the
    materialised window's order (a model's feature never logged is there, all missing)."""
    stored = _stored(unified_schema(files), input_name)
    return list(stored) + [f for f in features if f not in stored]


def count_rows(files: Sequence[Path], bounds: Bounds | None) -> int:
    import pyarrow.parquet as pq

    flt = bounds.expression() if bounds is not None else None
    if flt is None:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return int(dataset(files).count_rows(filter=flt))


def _pruned(data: pads.Dataset, flt: pads.Expression | None) -> pads.Dataset:
    """The dataset without the row groups whose statistics rule the window out."""
    import pyarrow.dataset as ds

    if flt is None:
        return data
    fragments = [f for frag in data.get_fragments() if (f := frag.subset(filter=flt)).num_row_groups]
    return ds.FileSystemDataset(fragments, data.schema, data.format, data.filesystem)


def scan(
    files: Sequence[Path],
    plan: Plan,
    *,
    input_name: str,
    features: Sequence[str],
    bounds: Bounds | None,
    skip: int = 0,
    expected_rows: int = 0,
) -> WindowScan:
    """One pass over the window's rows of ``files`` (the first ``skip`` of them left out).

    ``input_name`` is what the log's ``input_<j>`` columns are called in the window (a named
    tensor's name); ``features`` are the model's input columns (a feature never logged is all
    missing, as in the materialised window)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from mlbox.serving.predlog import OUT

    schema = unified_schema(files)
    stored = _stored(schema, input_name)
    columns = list(stored) + [f for f in features if f not in stored]
    outputs = output_plan([c[len(OUT) :] for c in schema.names if c.startswith(OUT)])
    proba_width = len(outputs[1]) if outputs is not None and outputs[0] == "proba" else 0
    predicted = {PREDICTION} | {f"{PROBA}{k}" for k in range(proba_width)} if outputs else set()
    in_window = set(columns) | predicted
    wanted_numeric = {c: col for c, col in plan.numeric.items() if c in in_window}
    categorical = [c for c in dict.fromkeys([*plan.categorical, PREDICTION]) if c in in_window]
    text = [
        stored[c] for c in categorical if c in stored and pa.types.is_string(schema.field(stored[c]).type)
    ]
    needs_ids = plan.keep is not None and len(plan.keep) > 0
    read = ["ts"] + (["request_id", "row"] if needs_ids else [])
    read += [
        stored[c] for c in dict.fromkeys([*wanted_numeric, *categorical, *plan.row_columns]) if c in stored
    ]
    if outputs is not None:
        read += [f"{OUT}{c}" for c in outputs[1]]
    read = list(dict.fromkeys(read + (bounds.columns if bounds is not None else [])))
    data = dataset(files, [*text, "request_id"] if needs_ids else text)  # ids: matched, not read as text
    data = _pruned(data, bounds.expression() if bounds is not None else None)

    categories: dict[str, dict[str, int]] = {c: {} for c in categorical}
    cat_missing = dict.fromkeys(categorical, 0)
    nulls: dict[str, bool] = {}
    kinds: dict[str, pa.DataType] = {}
    ts_parts: list[np.ndarray] = []
    top_parts: list[np.ndarray] = []
    nonint_parts: list[np.ndarray] = []
    kept_parts: list[pa.Table] = []
    row_parts: dict[str, list[Any]] = (
        {c: [] for c in [*plan.row_columns, PREDICTION]} if plan.row_columns else {}
    )
    sample_parts: list[pd.DataFrame] = []
    rng = np.random.default_rng(0)
    keep_share = min(1.0, plan.sample_rows / expected_rows) if plan.sample_rows and expected_rows else 0.0
    rows = 0
    outliers = 0
    to_skip = skip
    ids = keys = None
    if needs_ids:
        assert plan.keep is not None
        wanted = pa.array(plan.keep["request_id"].astype(str).tolist(), pa.string())
        ids = pc.unique(wanted)
        keys = _row_keys(pc.index_in(wanted, value_set=ids), pa.array(plan.keep["row"].to_numpy(np.int64)))

    batches = data.to_batches(
        columns=read, batch_size=BATCH_ROWS, batch_readahead=2, fragment_readahead=1
    )  # a few batches ahead keep both cores busy; Arrow's default of 16 held gigabytes
    for batch in batches:
        inside = bounds.inside(batch) if bounds is not None else None
        if inside is not None:
            batch = batch.filter(pa.array(inside))
        n = batch.num_rows
        if to_skip:
            if to_skip >= n:
                to_skip -= n
                continue
            batch = batch.slice(to_skip)
            n -= to_skip
            to_skip = 0
        if n == 0:
            continue
        start = rows
        rows += n
        ts_parts.append(batch.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False))
        flags = np.zeros(n, np.bool_)
        values: dict[str, Any] = {}  # window name -> numpy (numbers) or Arrow array
        for name in [*wanted_numeric, *categorical, *plan.row_columns]:
            if name in stored and name not in values:
                column = batch.column(stored[name])
                values[name] = column
                kinds.setdefault(name, column.type)
                nulls[name] = nulls.get(name, False) or column.null_count > 0
        prediction: Any = None
        if outputs is not None:
            how, cols = outputs
            if how == "proba":
                arrays = {c: batch.column(f"{OUT}{c}").to_numpy(zero_copy_only=False) for c in cols}
                prediction, top, columns_k = _classes(arrays)
                values[PREDICTION] = prediction
                for k, column_k in enumerate(columns_k):
                    values[f"{PROBA}{k}"] = column_k
                top_parts.append(top)
                kinds.setdefault(PREDICTION, pa.int64())
            else:
                column = batch.column(f"{OUT}{cols[0]}")
                prediction = column
                values[PREDICTION] = column
                kinds.setdefault(PREDICTION, column.type)
                nulls[PREDICTION] = nulls.get(PREDICTION, False) or column.null_count > 0
                nonint_parts.append(_non_integer(column))
        for name, col in wanted_numeric.items():
            v = values.get(name)
            if v is None:
                col.unusable(n)
                continue
            if isinstance(v, np.ndarray):
                col.add(v, flags)
                continue
            if (
                pa.types.is_string(v.type)
                or pa.types.is_large_string(v.type)
                or pa.types.is_dictionary(v.type)
            ):
                col.unusable(n)
                continue
            if pa.types.is_boolean(v.type):
                v = v.cast(pa.float64())
            col.add(v.to_numpy(zero_copy_only=False), flags)
        outliers += int(flags.sum())
        for name in categorical:
            v = values.get(name)
            if v is None:
                cat_missing[name] += n
                continue
            if isinstance(v, np.ndarray) and name == PREDICTION:  # a classifier's class: 0..k-1
                counts = categories[name]
                for k, c in enumerate(np.bincount(v, minlength=proba_width).tolist()):
                    if c:
                        counts[str(k)] = counts.get(str(k), 0) + c
                continue
            if isinstance(v, np.ndarray):
                v = pa.array(v)
            cat_missing[name] += _count_categories(v, categories[name])
        if ids is not None:
            rid = batch.column("request_id")
            if pa.types.is_dictionary(rid.type):  # look each distinct id up once, not each row
                code = pc.index_in(rid.dictionary, value_set=ids).take(rid.indices)
            else:
                code = pc.index_in(rid, value_set=ids)
            mask = pc.is_in(_row_keys(code, batch.column("row")), value_set=keys)
            where = np.flatnonzero(mask.fill_null(False).to_numpy(zero_copy_only=False))
            if where.size:
                taken = pa.array(where)
                kept: dict[str, Any] = {
                    "_i": pa.array(where + start),
                    "request_id": batch.column("request_id").take(taken).cast(pa.string()),
                    "row": batch.column("row").take(taken),
                }
                if prediction is not None:
                    kept[PREDICTION] = (
                        pa.array(prediction[where])
                        if isinstance(prediction, np.ndarray)
                        else prediction.take(taken)
                    )
                for k in range(proba_width):
                    kept[f"{PROBA}{k}"] = pa.array(values[f"{PROBA}{k}"][where])
                for name in plan.row_columns:
                    if name in values:
                        kept[name] = values[name].take(taken)
                kept_parts.append(pa.table(kept))
        if row_parts:
            for name in plan.row_columns:
                v = values.get(name)
                row_parts[name] += v.to_pylist() if v is not None else [None] * n
            row_parts[PREDICTION] += (
                prediction.tolist() if isinstance(prediction, np.ndarray)
                else prediction.to_pandas().tolist() if prediction is not None
                else [None] * n
            )  # fmt: skip
        if keep_share:
            chosen = np.flatnonzero(rng.random(n) < keep_share)
            if chosen.size:
                sample_parts.append(_sample_rows(values, wanted_numeric, chosen))

    import pandas as pd

    dtypes = {name: _pandas_dtype(kind, nulls.get(name, False)) for name, kind in kinds.items()}
    for name in predicted - {PREDICTION}:
        dtypes[name] = "float64"
    if outputs is not None and outputs[0] == "single":
        dtypes[PREDICTION] = "object"  # `read_outputs` makes a single output's values objects
    for name in columns:
        dtypes.setdefault(name, "float64")  # a feature never logged: all missing
    if kept_parts:
        kept_frame = pa.concat_tables(kept_parts, promote_options="permissive").to_pandas()
    else:
        kept_frame = pd.DataFrame(
            {c: [] for c in ["_i", "request_id", "row", *sorted(predicted), *plan.row_columns]}
        )
    return WindowScan(
        rows=rows,
        columns=columns,
        numeric=wanted_numeric,
        categories=categories,
        category_missing=cat_missing,
        dtypes=dtypes,
        outliers=outliers,
        ts_us=np.concatenate(ts_parts) if ts_parts else np.zeros(0, np.int64),
        top=np.concatenate(top_parts) if top_parts else (np.zeros(0) if proba_width else None),
        non_integer=np.concatenate(nonint_parts) if nonint_parts else None,
        has_prediction=outputs is not None,
        proba_width=proba_width,
        outputs=predicted,
        kept=kept_frame,
        row_values=row_parts,
        sample=pd.concat(sample_parts, ignore_index=True) if sample_parts else pd.DataFrame(),
    )


def _classes(outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(class, top probability, probability per class) per row, as `logframe.read_outputs` reads
    a multi-column output; two columns of probabilities (a binary classifier) without building
    the row-major matrix (a third of the pass's array work)."""
    a = [np.asarray(v, np.float64) for v in outputs.values()]
    if len(a) == 2 and not (np.isnan(a[0]).any() or np.isnan(a[1]).any()):
        p0, p1 = a
        if (p0 >= 0).all() and (p1 >= 0).all() and np.allclose(p0 + p1, 1.0, atol=1e-3):
            return (p1 > p0).astype(np.int64), np.maximum(p0, p1), a  # argmax: the first of equals
    pred, proba = read_outputs(outputs)  # type: ignore[arg-type]
    assert pred is not None and proba is not None
    return (
        np.asarray(pred, np.int64),
        proba.max(axis=1),
        [np.ascontiguousarray(proba[:, k]) for k in range(proba.shape[1])],
    )


def _row_keys(code: pa.Array, row: pa.Array) -> pa.Array:
    """One int64 per (request id, row): the id's position among the wanted ids (null where it is
    not one of them) and the row, so a row is matched by one hash lookup."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.add(pc.shift_left(code.cast(pa.int64()), 32), row.cast(pa.int64()))


def _non_integer(column: pa.Array) -> npt.NDArray[np.bool_]:
    """Per row, whether the materialised window's value is a float that is not a whole number
    (`MonitoringService` takes a window whose first 100 are for a regressor's)."""
    import pyarrow as pa

    n = len(column)
    if pa.types.is_floating(column.type):
        a = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        whole = np.isfinite(a) & (a == np.trunc(np.where(np.isfinite(a), a, 0.0)))
        return np.asarray(~whole)
    if pa.types.is_integer(column.type) and column.null_count:
        return np.asarray(column.is_null().to_numpy(zero_copy_only=False))  # NaN among whole numbers
    return np.zeros(n, np.bool_)


def _sample_rows(
    values: Mapping[str, Any], numeric: Mapping[str, NumericColumn], chosen: np.ndarray
) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    out: dict[str, np.ndarray] = {}
    for name in numeric:
        v = values.get(name)
        if v is None:
            out[name] = np.full(chosen.size, np.nan)
        elif isinstance(v, np.ndarray):
            out[name] = v[chosen].astype(np.float64)
        elif pa.types.is_integer(v.type) or pa.types.is_floating(v.type) or pa.types.is_boolean(v.type):
            out[name] = v.take(pa.array(chosen)).cast(pa.float64()).to_numpy(zero_copy_only=False)
        else:
            out[name] = np.full(chosen.size, np.nan)
    return pd.DataFrame(out)
