"""Batch scoring: a Parquet or CSV file scored by a loaded model into a Parquet file, chunk by chunk.

One engine for every batch caller (``mlbox predict``, the API, pipelines,
monitoring backfills, labeling's pre-labels), so a file scores the same way
whoever asks. `score_file` streams the input in chunks of
``BatchOptions.batch_size`` rows (`mlbox.serving.batch_inputs`), scores each
through the same `LoadedModel.predict` serving uses (or serving's feature
lookup for models registered with feature views) and appends it to the output
with the predictions beside the inputs, so memory is bounded by a few chunks:
the next chunk is read and the last one written while one is scored
(`_pipeline`).

Missing values are scored, not refused: a null or NaN among a row's inputs
reaches the model as NaN (gradient boosting and compiled trees score it on
purpose; a model that refuses NaN fails naming the rows), and the result
counts such rows (`BatchResult.rows_with_missing`) so that none is scored
silently. A feature-view model's entity without values is refused unless
``allow_missing``, and then counted the same way.

Invariant: the output appears whole or not at all. Chunks go to a hidden
temporary file beside the output, renamed over it at the end; a failed or
interrupted run removes the temporary file and leaves an earlier output
untouched, so a pipeline waiting on the name never reads half a file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlbox.registry.loaded import LoadedModel
from mlbox.registry.signature import SchemaMismatch
from mlbox.serving.batch_inputs import (
    FORMATS,
    FeatureInputs,
    float_matrix,
    missing_rows,
    model_inputs,
    read_chunks,
)
from mlbox.store.errors import InvalidInput, MlboxError

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from mlbox.features.service import FeatureStore

ProgressCallback = Callable[[int, int | None], None]
"""``progress(rows_done, rows_total)``: called with ``(0, total)`` once the input is open, then after
each chunk is written with the rows done so far (strictly increasing). ``rows_total`` is None where
the format does not say up front (CSV)."""


@dataclass(frozen=True)
class BatchOptions:
    """How to score a file; the fields are `mlbox predict`'s options, which error messages name."""

    batch_size: int = 10_000
    """Rows per chunk: memory is bounded by three chunks (one read ahead, one scored, one being
    written) and their predictions."""
    keep_inputs: bool = True
    """Copy the input columns into the output beside the predictions."""
    columns: tuple[str, ...] | None = None
    """The feature columns, in the model's order; None takes what the signature says."""
    prediction_column: str = "prediction"
    """The predictions' column; a model with several outputs writes ``<name>_<output>``."""
    timestamp_column: str | None = None
    """Feature-view models: the entity time column of a point-in-time lookup (default
    ``event_timestamp`` when the input has it)."""
    online: bool = False
    """Feature-view models: the latest online values, even when the input has a time column."""
    allow_missing: bool = False
    """Feature-view models: score rows whose entity has no feature values (NaN) instead of refusing."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise InvalidInput("batch_size: must be at least 1", field="batch_size")
        if not self.prediction_column:
            raise InvalidInput("prediction_column: must not be empty", field="prediction_column")
        if self.columns is not None and not self.columns:
            raise InvalidInput("columns: name at least one column", field="columns")
        if self.online and self.timestamp_column is not None:
            raise InvalidInput("give timestamp_column or online, not both", field="online")


@dataclass(frozen=True)
class BatchResult:
    """What a scoring run did, for the caller's summary line."""

    rows: int
    output: Path
    features: str | None = None
    """Where a feature-view model's values came from (e.g. ``latest online values``); None otherwise."""
    rows_with_missing: int = 0
    """Rows scored with a missing value (null or NaN) among the model's inputs, or, for a feature-view
    model, among the values looked up: they reached the model as NaN (see `missing_rows`)."""


# -- predictions as Arrow columns ----------------------------------------------------------


def _arrow_array(values: np.ndarray, name: str, rows: int) -> pa.Array:
    """One output as an Arrow column: vectors per row become a fixed-size list column."""
    import pyarrow as pa

    if values.ndim == 0 or values.shape[0] != rows:
        raise MlboxError(f"the model returned {list(values.shape)} for {name!r} on a chunk of {rows} rows")
    if values.ndim == 1:
        if values.dtype.kind == "O":
            return pa.array(values.tolist())
        return _plain(values)
    width = int(np.prod(values.shape[1:]))
    flat = _plain(np.ascontiguousarray(values).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width)


def _plain(values: np.ndarray) -> pa.Array:
    """A 1-D array as Arrow: numbers as a view of their buffer, anything else through ``pa.array``.

    Why: ``pa.array`` imports pandas on its first call (~0.5 s of `mlbox predict`'s start-up, more
    on a busy machine), which nothing else in scoring a file of numbers needs.
    """
    import pyarrow as pa

    if values.dtype.kind in "iuf" and values.dtype.isnative:
        contiguous = np.ascontiguousarray(values)
        kind = pa.from_numpy_dtype(contiguous.dtype)
        return pa.Array.from_buffers(kind, len(contiguous), [None, pa.py_buffer(contiguous)])
    return pa.array(values)


def prediction_columns(result: Any, column: str, rows: int) -> dict[str, pa.Array]:
    """The model's outputs as columns: one output is ``column``, several ``column_<name>``."""
    from mlbox.serving.tensors import to_outputs

    outputs = to_outputs(result, column)
    if len(outputs) == 1:
        ((_, values),) = outputs.items()
        return {column: _arrow_array(values, column, rows)}
    return {f"{column}_{name}": _arrow_array(v, name, rows) for name, v in outputs.items()}


# -- scoring chunks into one file ------------------------------------------------------------


class _Scorer:
    """Scores chunks and writes them to one Parquet file, its schema fixed by the first chunk."""

    def __init__(
        self, model: LoadedModel, tmp: Path, options: BatchOptions, features: FeatureInputs | None
    ) -> None:
        self.model = model
        self.features = features
        self.tmp = tmp
        self.keep_inputs = options.keep_inputs
        self.column = options.prediction_column
        self.columns = list(options.columns) if options.columns is not None else None
        self.writer: Any = None
        self.rows = 0
        """Rows scored so far."""
        self.written = 0
        """Rows written so far (at most one chunk behind `rows`)."""
        self.rows_with_missing = 0

    def score(self, batch: pa.RecordBatch) -> pa.Table:
        """Scores one chunk: its output table (written by `write`, maybe in another thread)."""
        import polars as pl
        import pyarrow as pa

        first, last = self.rows, self.rows + batch.num_rows - 1
        features = self.features
        if features is not None:
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            result = self._call(lambda: features.predict(frame, first), first, last)
            self.rows_with_missing += features.missing
        else:
            schema = self.model.signature.inputs if self.model.signature else None
            inputs = float_matrix(batch, schema, self.columns)
            if inputs is None:  # anything but plain float columns: polars shapes (and words) it
                columns = pl.from_arrow(batch)
                assert isinstance(columns, pl.DataFrame)
                inputs = self._inputs(columns, first)
            missing = missing_rows(inputs)
            self.rows_with_missing += int(missing.sum())
            at = int(np.argmax(missing)) if missing.any() else None  # the first row a model may refuse
            result = self._call(lambda: self.model.predict(inputs), first, last, at)
        preds = prediction_columns(result, self.column, batch.num_rows)
        if self.keep_inputs:
            clash = next((n for n in preds if n in batch.schema.names), None)
            if clash is not None:
                raise InvalidInput(
                    f"{clash}: the input already has this column; name the predictions with "
                    "--prediction-column, or drop the inputs with --no-keep-inputs",
                    field=clash,
                )
            table = pa.Table.from_batches([batch])
            for name, values in preds.items():
                table = table.append_column(name, values)
        else:
            table = pa.table(preds)
        self.rows += batch.num_rows
        return table

    def _inputs(self, frame: pl.DataFrame, first_row: int) -> Any:
        features = frame
        if self.columns is not None:
            for name in self.columns:
                if name not in frame.columns:
                    raise SchemaMismatch(
                        f"{name}: no such column (--columns); the input has columns {frame.columns}",
                        field=name,
                    )
            features = frame.select(self.columns)
        return model_inputs(
            features, self.model.signature.inputs if self.model.signature else None, first_row
        )

    def _call(self, run: Callable[[], Any], first: int, last: int, missing_at: int | None = None) -> Any:
        """The model's own exceptions as one `MlboxError` naming the version and the rows at fault:
        the chunk's, or the first row with a missing value when the model complains of NaN."""
        try:
            return run()
        except MlboxError:
            raise
        except Exception as exc:  # the model's own complaint, about this file's rows
            text = str(exc).strip().splitlines()
            where = f"rows {first}..{last}"
            if missing_at is not None and "nan" in str(exc).lower():
                where = f"row {first + missing_at} (a missing value, read as NaN)"
            raise MlboxError(
                f"model {self.model.version.name} version {self.model.version.version} failed on "
                f"{where}: {type(exc).__name__}: {text[0] if text else ''}"
            ) from None

    def write(self, table: pa.Table) -> None:
        """Appends a chunk; a later chunk whose types drift (CSV inference) is cast to the first's."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            self.writer = pq.ParquetWriter(
                self.tmp, table.schema, use_dictionary=_dictionary_columns(table.schema)
            )
        elif table.schema != self.writer.schema:
            try:
                table = table.cast(self.writer.schema)
            except (pa.ArrowException, ValueError) as exc:
                raise InvalidInput(
                    f"rows {self.written}..: the columns changed type from the first chunk ({exc})",
                    field="input",
                ) from None
        self.writer.write_table(table)
        self.written += table.num_rows

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns worth Parquet's dictionary encoding: not floating point ones.

    Why: pyarrow tries a dictionary for every column by default; on floats (almost
    all distinct) it builds one per page and gives it up, which made writing the
    output 12x slower than the rest of scoring (20 float columns, 100,000 rows:
    640 ms with, 50 ms without) and the file no smaller.
    """
    import pyarrow as pa

    def floating(t: pa.DataType) -> bool:
        if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
            return floating(t.value_type)
        return bool(pa.types.is_floating(t))

    return [f.name for f in schema if not floating(f.type)]


def score_file(
    input_path: Path,
    output: Path,
    model: LoadedModel,
    options: BatchOptions | None = None,
    *,
    feature_store: FeatureStore | None = None,
    progress: ProgressCallback | None = None,
) -> BatchResult:
    """Scores ``input_path`` (.parquet or .csv) with ``model`` into the Parquet file ``output``.

    ``model`` comes from `RegistryService.load` (its files verified against
    their sha256), so callers that hold one already (serving's deployments)
    do not load it again. A model registered with feature views needs
    ``feature_store`` to look its features up. ``progress`` is told the rows
    done as chunks are written (see `ProgressCallback`). Errors are `MlboxError` and
    its kin: `InvalidInput` or `SchemaMismatch` naming the field at fault, `NotFound`
    for a feature view that no longer exists, `MlboxError` naming the rows a
    model failed on; the output is then left as it was.
    """
    options = options or BatchOptions()
    if input_path.suffix.lower() not in FORMATS:
        raise InvalidInput(f"{input_path} must be a .parquet or .csv file", field="input")
    if not input_path.is_file():
        raise InvalidInput(f"no such file: {input_path}", field="input")
    if output.suffix.lower() != ".parquet":
        raise InvalidInput(f"{output} must end with .parquet", field="output")
    if not output.parent.is_dir():
        raise InvalidInput(f"no such folder: {output.parent}", field="output")
    features = _feature_inputs(model, options, feature_store)
    total, chunks = read_chunks(input_path, options.batch_size)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    scorer = _Scorer(model, tmp, options, features)
    try:
        if progress is not None:
            progress(0, total)
        _pipeline(chunks, scorer, lambda: None if progress is None else progress(scorer.written, total))
        scorer.close()
        if scorer.rows == 0:
            raise InvalidInput(f"{input_path} has no rows to score", field="input")
        os.replace(tmp, output)
    finally:
        scorer.close()
        tmp.unlink(missing_ok=True)
    return BatchResult(
        scorer.rows, output, None if features is None else features.source, scorer.rows_with_missing
    )


def _pipeline(chunks: Iterator[pa.RecordBatch], scorer: _Scorer, written: Callable[[], None]) -> None:
    """Every chunk scored in this thread, while the next is read and the last written in another.

    Why: reading a Parquet chunk and writing one are Arrow's C++ (the GIL
    released), as is the trees' walk, so on a 2-core machine the three overlap
    instead of taking turns; scoring alone kept a core idle through every read
    and write. At most one chunk is read ahead and one written behind, so
    memory stays a few chunks. Errors from either thread surface here, in order.
    ``written()`` is called after each chunk's write (the progress callback).
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlbox-batch-io") as io:
        ahead: Future[pa.RecordBatch | None] = io.submit(next, chunks, None)
        writing: Future[None] | None = None
        while True:
            batch = ahead.result()
            if batch is None:
                break
            ahead = io.submit(next, chunks, None)  # one reader at a time: the next starts after this one
            table = scorer.score(batch)
            if writing is not None:
                writing.result()
                written()
            writing = io.submit(scorer.write, table)
        if writing is not None:
            writing.result()
            written()


def _feature_inputs(
    model: LoadedModel, options: BatchOptions, store: FeatureStore | None
) -> FeatureInputs | None:
    """The feature lookup of a model registered with feature views; None for a model that takes columns."""
    refs = model.version.manifest.get("features")
    if not refs:
        return None
    if options.columns is not None:
        raise InvalidInput(
            f"{model.version.ref} looks its features up by entity ({', '.join(refs)}); it takes no columns",
            field="columns",
        )
    if store is None:
        raise InvalidInput(
            f"{model.version.ref} looks its features up by entity ({', '.join(refs)}); "
            "score it with a feature store",
            field="feature_store",
        )
    return FeatureInputs(
        store,
        model,
        refs,
        timestamp_column=options.timestamp_column,
        online=options.online,
        allow_missing=options.allow_missing,
    )
