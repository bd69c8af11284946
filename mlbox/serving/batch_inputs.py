"""Batch scoring's inputs: a Parquet or CSV file read in chunks, each chunk shaped as the model takes it.

`mlbox.serving.batch.score_file` streams a file through these so a file larger
than memory scores in constant memory (one chunk at a time). The invariant
this module owns is that every failure is an `MlboxError` naming the field at
fault: an unreadable file is ``input``; a column the model needs and the
chunk lacks is that column (`SchemaMismatch`); a row whose entity has no
feature values is refused naming the row and its keys. The messages name the
``mlbox predict`` option that fixes the problem (``--columns``,
``--allow-missing``...): those options are `BatchOptions` fields of the same
name, so the hint reads right to a Python caller too.

`FeatureInputs` serves models registered with ``features=["view:feature"]``:
the lookup, the model's matrix and its validation are serving's
(`mlbox.serving.features.with_features`), only the source of the values
differs (point-in-time from the offline store, or the latest online values).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlbox.registry.loaded import LoadedModel
from mlbox.registry.signature import Schema, SchemaMismatch
from mlbox.serving.batch_formats import DEFAULT_TIMESTAMP_COLUMN as DEFAULT_TIMESTAMP_COLUMN
from mlbox.serving.batch_formats import FORMATS as FORMATS
from mlbox.store.errors import InvalidInput

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from mlbox.features.service import FeatureStore

MISSING_SHOWN = 5
"""How many entities without feature values an error names before it counts the rest."""


# -- reading ----------------------------------------------------------------------


def _unreadable(path: Path, exc: BaseException) -> InvalidInput:
    """The reader's first line only: Arrow and polars errors can run to a page."""
    text = str(exc).strip().splitlines()
    return InvalidInput(f"cannot read {path}: {text[0] if text else type(exc).__name__}", field="input")


def read_chunks(path: Path, batch_size: int) -> tuple[int | None, Iterator[pa.RecordBatch]]:
    """The input's row count (None when unknown up front, as for CSV) and its chunks as Arrow batches."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".parquet":
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(path, exc) from None
        batches: Iterator[pa.RecordBatch] = parquet.iter_batches(batch_size=batch_size)
        total: int | None = parquet.metadata.num_rows
    else:
        try:
            frames = pl.scan_csv(path).collect_batches(chunk_size=batch_size)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise _unreadable(path, exc) from None
        batches = (b for frame in frames for b in frame.to_arrow().to_batches(max_chunksize=batch_size))
        total = None

    def guarded() -> Iterator[pa.RecordBatch]:
        """Errors surface while iterating (a corrupt page, a bad CSV row): one line naming the file."""
        it = iter(batches)
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except (pa.ArrowException, pl.exceptions.PolarsError, OSError) as exc:
                raise _unreadable(path, exc) from None
            if batch.num_rows:
                yield batch

    return total, guarded()


# -- shaping a chunk for the model -----------------------------------------------------


def _missing(name: str, what: str, frame: pl.DataFrame) -> SchemaMismatch:
    return SchemaMismatch(
        f"{name}: missing column; the model takes {what}, the input has columns {frame.columns}",
        field=name,
    )


def _column_values(frame: pl.DataFrame, name: str) -> np.ndarray:
    """A column as an array: scalars give one dimension, list or array columns a stacked matrix."""
    values = frame.get_column(name).to_numpy()
    if values.dtype.kind == "O" and len(values) and isinstance(values[0], (np.ndarray, list)):
        try:
            return np.stack([np.asarray(v) for v in values])
        except ValueError:
            raise SchemaMismatch(f"{name}: rows of unequal length", field=name) from None
    return np.asarray(values)


def _numeric_matrix(frame: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
    names = [n for n, dtype in frame.schema.items() if dtype.is_numeric() or str(dtype) == "Boolean"]
    if not names:
        raise SchemaMismatch(f"the input has no numeric columns (columns {frame.columns})", field="input")
    return frame.select(names).to_numpy(), names


def not_numeric(frame: pl.DataFrame, first_row: int = 0) -> list[tuple[str, str]]:
    """The columns a numeric matrix leaves out, each with why, the likely typos first.

    A text column some of whose values read as numbers (``3.5``) most likely
    holds a typo among numbers, so it is named with its first value that is
    not one and that value's row in the file (``first_row`` is the chunk's
    offset). A column of text only (an id riding along) is named bare, after.
    """
    import polars as pl

    typos: list[tuple[str, str]] = []
    others: list[tuple[str, str]] = []
    for name, dtype in frame.schema.items():
        if dtype.is_numeric() or dtype == pl.Boolean:
            continue
        column = frame.get_column(name)
        if dtype == pl.String:
            parsed = column.str.strip_chars().cast(pl.Float64, strict=False)
            bad = (parsed.is_null() & column.is_not_null()).arg_true()
            if parsed.null_count() < column.len() and bad.len():
                row = int(bad[0])
                typos.append((name, f"{name} ({column[row]!r} in row {first_row + row})"))
                continue
        others.append((name, name))
    return typos + others


def _not_numeric_hint(frame: pl.DataFrame, first_row: int) -> tuple[str, str]:
    """The error's tail naming the columns left out, and the field at fault (a typo's column, else input)."""
    left_out = not_numeric(frame, first_row)
    if not left_out:
        return "", "input"
    listed = ", ".join(text for _, text in left_out[:MISSING_SHOWN])
    more = f" (+{len(left_out) - MISSING_SHOWN} more)" if len(left_out) > MISSING_SHOWN else ""
    field = left_out[0][0] if "(" in left_out[0][1] else "input"
    return f"; not numeric: {listed}{more}", field


def missing_rows(inputs: Any) -> np.ndarray:
    """Which rows of a model's inputs hold a missing value (null or NaN), as a boolean mask.

    The batch policy: such rows reach the model as they are (NaN), since many
    models (gradient boosting, trees compiled by mlbox) score them on purpose;
    a model that refuses NaN fails naming the rows. They are counted, so the
    summary says how many rows were scored with a value missing.
    """
    import polars as pl

    if isinstance(inputs, pl.DataFrame):
        masks = [
            (c.is_null() | c.is_nan()) if c.dtype.is_float() else c.is_null() for c in inputs.get_columns()
        ]
        if not masks:
            return np.zeros(inputs.height, dtype=bool)
        return np.asarray(pl.DataFrame(masks).select(pl.any_horizontal(pl.all())).to_series().to_numpy())
    if isinstance(inputs, dict):
        found = [missing_rows(v) for v in inputs.values()]
        return np.logical_or.reduce(found) if found else np.zeros(0, dtype=bool)
    values = np.asarray(inputs)
    if values.ndim == 0:
        return np.zeros(0, dtype=bool)
    if values.dtype.kind in "fc":
        holes = np.isnan(values)
    elif values.dtype.kind == "O":
        holes = np.frompyfunc(lambda v: v is None or (isinstance(v, float) and v != v), 1, 1)(values)
        holes = holes.astype(bool)
    else:
        return np.zeros(values.shape[0], dtype=bool)
    return holes.reshape(values.shape[0], -1).any(axis=1)


def model_inputs(frame: pl.DataFrame, schema: Schema | None, first_row: int = 0) -> Any:
    """One chunk as the model takes it: the signature's columns or named tensors, else one matrix.

    A one-tensor signature (``[N, k]``) takes the input's numeric columns in
    file order (or a list column named like the tensor); other columns, such
    as string ids, ride along untouched. ``--columns`` narrows the choice.
    When the count does not match, the error names the columns left out as
    not numeric (a typo in a number column is the usual cause), with the
    first bad value and its row (``first_row`` is the chunk's offset).
    """
    if schema is not None and schema.kind == "columns":
        for name in schema.names():
            if name not in frame.columns:
                raise _missing(name, f"columns {schema.names()}", frame)
        return frame.select(schema.names())
    if schema is not None and schema.kind == "tensors":
        for name in schema.names():
            if name not in frame.columns:
                raise _missing(name, f"inputs {schema.names()}", frame)
        return {name: _column_values(frame, name) for name in schema.names()}
    spec = schema.tensors[0] if schema is not None and schema.tensors else None
    if spec is not None and spec.name and spec.name in frame.columns:
        return _column_values(frame, spec.name)
    matrix, names = _numeric_matrix(frame)
    if spec is not None and len(spec.shape) == 1:
        if len(names) != 1:
            hint, field = _not_numeric_hint(frame, first_row)
            raise SchemaMismatch(
                f"input: the model takes one value per row, the input has {len(names)} numeric columns "
                f"{_abridged(names)}{hint}; choose one with --columns",
                field=field,
            )
        return matrix[:, 0]
    if spec is not None and len(spec.shape) == 2 and spec.shape[1] not in (-1, len(names)):
        hint, field = _not_numeric_hint(frame, first_row)
        raise SchemaMismatch(
            f"input: the model takes {spec.shape[1]} features, the input has {len(names)} numeric columns "
            f"{_abridged(names)}{hint}; choose them with --columns",
            field=field,
        )
    return matrix


def float_matrix(
    batch: pa.RecordBatch, schema: Schema | None, columns: Sequence[str] | None
) -> np.ndarray | None:
    """`model_inputs`'s matrix built straight from Arrow in the common case, else None.

    The common case: a one-tensor signature of rows (``[N, k]``) or none, and
    the columns it takes (``columns``, or every column but text ones riding
    along) all float64 without nulls. Each column is copied once into a
    column-major matrix, the layout the compiled trees read, instead of going
    through a polars frame (~4x less time per chunk). Anything else (other
    types, nulls, a missing or list column, a count that does not match) is
    None: `model_inputs` shapes it, or words why it cannot.
    """
    import pyarrow as pa

    if schema is not None and schema.kind != "tensor":
        return None
    spec = schema.tensors[0] if schema is not None and schema.tensors else None
    names = batch.schema.names
    if spec is not None and (len(spec.shape) != 2 or (spec.name and spec.name in names)):
        return None
    taken: list[int] = []
    for name in columns if columns is not None else names:
        index = batch.schema.get_field_index(name)
        if index < 0:
            return None
        kind = batch.schema.field(index).type
        if columns is None and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            continue  # text rides along, as model_inputs leaves it
        if kind != pa.float64() or batch.column(index).null_count:
            return None
        taken.append(index)
    if not taken or (spec is not None and spec.shape[1] not in (-1, len(taken))):
        return None
    matrix = np.empty((batch.num_rows, len(taken)), dtype=np.float64, order="F")
    for j, index in enumerate(taken):  # the values' buffer itself: Array.to_numpy imports pandas (~0.5 s)
        column = batch.column(index)
        matrix[:, j] = np.frombuffer(column.buffers()[1], np.float64, len(column), column.offset * 8)
    return matrix


def _abridged(names: list[str], shown: int = 6) -> str:
    """A wide file's column list, cut so the error stays one readable line."""
    return str(names) if len(names) <= shown else f"[{', '.join(names[:shown])}, … (+{len(names) - shown})]"


# -- models whose inputs are feature views ------------------------------------------------


class FeatureInputs:
    """Scores a chunk of entity rows with a model registered with ``features=[...]``.

    The lookup, the model's matrix and its validation are serving's
    (`mlbox.serving.features.with_features`); only where the values come from
    differs: `FeatureStore.lookup_historical` at each row's time (no
    training-set record per chunk), or `FeatureStore.get_online_features`.
    The choice is made on the first chunk and holds for the file.
    """

    def __init__(
        self,
        store: FeatureStore,
        model: LoadedModel,
        refs: Sequence[str],
        *,
        timestamp_column: str | None,
        online: bool,
        allow_missing: bool,
    ) -> None:
        self.store = store
        self.model = model
        self.refs = list(refs)
        self.keys = store.join_keys(self.refs)  # NotFound here for an unknown or deleted view
        self.request = list(store.request_fields(self.refs))
        """Columns on-demand features read from the input itself (Feast's request data)."""
        self.timestamp_column = timestamp_column
        self.online = online
        self.allow_missing = allow_missing
        self.at: str | None = None
        """The entity time column of a point-in-time lookup; None for online values."""
        self.decided = False
        self.missing = 0
        """Rows of the last chunk scored with a feature value missing (NaN to the model)."""

    @property
    def source(self) -> str:
        """Where the feature values came from, for the summary a caller prints."""
        if self.at is None:
            return "latest online values"
        return f"point-in-time from the offline store at {self.at!r}"

    def decide(self, frame: pl.DataFrame) -> None:
        """Point-in-time or online, from the first chunk's columns: one file, one kind of value."""
        if self.decided:
            return
        self.decided = True
        if self.timestamp_column is not None and self.timestamp_column not in frame.columns:
            raise InvalidInput(
                f"{self.timestamp_column}: no such column (--timestamp-column); the input has columns "
                f"{frame.columns}",
                field=self.timestamp_column,
            )
        column = self.timestamp_column or DEFAULT_TIMESTAMP_COLUMN
        if not self.online and column in frame.columns:
            self.at = column

    def predict(self, frame: pl.DataFrame, first_row: int) -> Any:
        """The model's outputs for one chunk; ``first_row`` (its offset in the file) names refused rows."""
        from mlbox.serving.features import entity_inputs, with_features
        from mlbox.serving.tensors import Payload

        self.decide(frame)
        for key in self.keys:
            if key not in frame.columns:
                raise _missing(key, f"the join keys {list(self.keys)} of its feature views", frame)
            nulls = frame.get_column(key).null_count()
            if nulls:
                raise SchemaMismatch(f"{key}: {nulls} rows have no value for this join key", field=key)
        for name in self.request:
            if name not in frame.columns:
                raise _missing(name, f"the request fields {self.request} its on-demand features read", frame)
        passed = [*self.keys, *self.request]
        inputs, _ = entity_inputs(Payload("columns", {k: frame.get_column(k).to_list() for k in passed}))

        def lookup(rows: Sequence[Mapping[str, Any]], refs: Sequence[str]) -> dict[str, list[Any]]:
            if self.at is None:
                found = self.store.get_online_features(rows, refs, full_feature_names=True)
            else:
                found = self._historical(frame, refs)
            if not self.allow_missing:
                self._refuse_missing(frame, found, first_row)
            self.missing = _rows_without_values(found, self._looked_up(found), frame.height)
            return found

        schema = self.model.signature.inputs if self.model.signature else None
        return with_features(self.refs, lookup, schema, self.model.predictor.predict)(inputs)

    def _historical(self, frame: pl.DataFrame, refs: Sequence[str]) -> dict[str, list[Any]]:
        import polars as pl

        assert self.at is not None
        entity = frame.select(*self.keys, *self.request, self.at)
        if entity.schema[self.at] == pl.String:  # CSV: ISO 8601 text
            try:
                # eagerly on the Series: polars infers a zone from the text there (``+00:00``), not in an Expr
                entity = entity.with_columns(entity.get_column(self.at).str.to_datetime(time_unit="us"))
            except pl.exceptions.PolarsError:
                raise InvalidInput(
                    f"{self.at}: not ISO 8601 times (e.g. 2024-05-01T12:00:00)", field=self.at
                ) from None
        values = self.store.lookup_historical(entity, refs, timestamp_field=self.at, full_feature_names=True)
        return values.to_dict(as_series=False)

    def _looked_up(self, found: Mapping[str, list[Any]]) -> list[str]:
        """The feature columns of a lookup's answer (not the keys, request values or time it echoes)."""
        return [c for c in found if c not in self.keys and c not in self.request and c != self.at]

    def _refuse_missing(self, frame: pl.DataFrame, found: Mapping[str, list[Any]], first_row: int) -> None:
        """Rows none of whose features has a value: an unknown entity, as serving's 422 names it."""
        looked_up = self._looked_up(found)
        missing = [i for i in range(frame.height) if all(found[c][i] is None for c in looked_up)]
        if not missing:
            return
        shown = []
        for i in missing[:MISSING_SHOWN]:
            key = ",".join(f"{k}={found[k][i]}" for k in self.keys)
            shown.append(key if self.at is None else f"{key} at {found[self.at][i]}")
        more = f" (+{len(missing) - MISSING_SHOWN} more)" if len(missing) > MISSING_SHOWN else ""
        why = (
            "unknown to the online store or older than the view's TTL"
            if self.at is None
            else f"no feature row at or before its {self.at!r}, or older than the view's TTL"
        )
        one = len(missing) == 1
        raise InvalidInput(
            f"{len(missing)} row{'' if one else 's'} (the first is row {first_row + missing[0]}) "
            f"{'has' if one else 'have'} no feature values for their entity: {'; '.join(shown)}{more} "
            f"({why}); pass --allow-missing to score them with missing features",
            field="input",
        )


def _rows_without_values(found: Mapping[str, list[Any]], columns: Sequence[str], rows: int) -> int:
    """Rows of a lookup's answer with any feature value missing (None or NaN)."""

    def gone(v: Any) -> bool:
        return v is None or (isinstance(v, float) and v != v)

    return sum(1 for i in range(rows) if any(gone(found[c][i]) for c in columns))
