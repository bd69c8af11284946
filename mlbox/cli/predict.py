"""``mlbox predict``: batch scoring of a Parquet or CSV file with a registered model.

The file is streamed in chunks (``--batch-size`` rows) so a file larger than
memory scores in constant memory: each chunk is shaped to the model's
signature, scored through the same `LoadedModel.predict` that serving uses
(the model's files verified against their sha256 on load), and appended to
the output with a ``prediction`` column. The output is written to a hidden
temporary file beside it and renamed at the end, so a failed or interrupted
run never leaves a half-written file under the name a pipeline waits for.

A model registered with ``features=["view:feature", ...]`` takes entity keys:
each chunk's features are looked up as serving does (`mlbox.serving.features`),
point-in-time from the offline store when the input has the entity time
column (``event_timestamp`` or ``--timestamp-column``), else the latest online
values. Rows whose entity has no value for any feature are refused, naming
them, unless ``--allow-missing`` scores them with missing (NaN) features.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from mlbox.cli.context import Context, pass_ctx
from mlbox.registry.loaded import LoadedModel
from mlbox.registry.signature import Schema, SchemaMismatch
from mlbox.store.errors import InvalidInput, MlboxError

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from mlbox.features.service import FeatureStore

FORMATS = (".parquet", ".csv")
DEFAULT_TIMESTAMP_COLUMN = "event_timestamp"
MISSING_SHOWN = 5


# -- reading ----------------------------------------------------------------------


def _unreadable(path: Path, exc: BaseException) -> InvalidInput:
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


def model_inputs(frame: pl.DataFrame, schema: Schema | None) -> Any:
    """One chunk as the model takes it: the signature's columns or named tensors, else one matrix.

    A one-tensor signature (``[N, k]``) takes the input's numeric columns in
    file order (or a list column named like the tensor); other columns, such
    as string ids, ride along untouched. ``--columns`` narrows the choice.
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
            raise SchemaMismatch(
                f"input: the model takes one value per row, the input has {len(names)} numeric columns "
                f"{names}; choose one with --columns",
                field="input",
            )
        return matrix[:, 0]
    if spec is not None and len(spec.shape) == 2 and spec.shape[1] not in (-1, len(names)):
        raise SchemaMismatch(
            f"input: the model takes {spec.shape[1]} features, the input has {len(names)} numeric columns "
            f"{_abridged(names)}; choose them with --columns",
            field="input",
        )
    return matrix


def _abridged(names: list[str], shown: int = 6) -> str:
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

    @property
    def source(self) -> str:
        if self.at is None:
            return "latest online values"
        return f"point-in-time from the offline store at {self.at!r}"

    def decide(self, frame: pl.DataFrame) -> None:
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

    def _refuse_missing(self, frame: pl.DataFrame, found: Mapping[str, list[Any]], first_row: int) -> None:
        """Rows none of whose features has a value: an unknown entity, as serving's 422 names it."""
        looked_up = [c for c in found if c not in self.keys and c not in self.request and c != self.at]
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


# -- predictions as Arrow columns ----------------------------------------------------------


def _arrow_array(values: np.ndarray, name: str, rows: int) -> pa.Array:
    import pyarrow as pa

    if values.ndim == 0 or values.shape[0] != rows:
        raise MlboxError(f"the model returned {list(values.shape)} for {name!r} on a chunk of {rows} rows")
    if values.ndim == 1:
        if values.dtype.kind == "O":
            return pa.array(values.tolist())
        return pa.array(values)
    width = int(np.prod(values.shape[1:]))
    flat = pa.array(np.ascontiguousarray(values).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width)


def prediction_columns(result: Any, column: str, rows: int) -> dict[str, pa.Array]:
    """The model's outputs as columns: one output is ``column``, several ``column_<name>``."""
    from mlbox.serving.tensors import to_outputs

    outputs = to_outputs(result, column)
    if len(outputs) == 1:
        ((_, values),) = outputs.items()
        return {column: _arrow_array(values, column, rows)}
    return {f"{column}_{name}": _arrow_array(v, name, rows) for name, v in outputs.items()}


# -- the command ----------------------------------------------------------------------


class _Scorer:
    """Scores chunks and writes them to one Parquet file, its schema fixed by the first chunk."""

    def __init__(
        self,
        model: LoadedModel,
        tmp: Path,
        *,
        keep_inputs: bool,
        column: str,
        columns: list[str] | None,
        features: FeatureInputs | None = None,
    ) -> None:
        self.model = model
        self.features = features
        self.tmp = tmp
        self.keep_inputs = keep_inputs
        self.column = column
        self.columns = columns
        self.writer: Any = None
        self.rows = 0

    def score(self, batch: pa.RecordBatch) -> int:
        import polars as pl
        import pyarrow as pa

        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        first, last = self.rows, self.rows + batch.num_rows - 1
        features = self.features
        if features is not None:
            result = self._call(lambda: features.predict(frame, first), first, last)
        else:
            inputs = self._inputs(frame)
            result = self._call(lambda: self.model.predict(inputs), first, last)
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
        self._write(table)
        self.rows += batch.num_rows
        return batch.num_rows

    def _inputs(self, frame: pl.DataFrame) -> Any:
        features = frame
        if self.columns is not None:
            for name in self.columns:
                if name not in frame.columns:
                    raise SchemaMismatch(
                        f"{name}: no such column (--columns); the input has columns {frame.columns}",
                        field=name,
                    )
            features = frame.select(self.columns)
        return model_inputs(features, self.model.signature.inputs if self.model.signature else None)

    def _call(self, run: Callable[[], Any], first: int, last: int) -> Any:
        try:
            return run()
        except MlboxError:
            raise
        except Exception as exc:  # the model's own complaint, about this file's rows
            text = str(exc).strip().splitlines()
            raise MlboxError(
                f"model {self.model.version.name} version {self.model.version.version} failed on rows "
                f"{first}..{last}: {type(exc).__name__}: {text[0] if text else ''}"
            ) from None

    def _write(self, table: pa.Table) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema)
        elif table.schema != self.writer.schema:
            try:
                table = table.cast(self.writer.schema)
            except (pa.ArrowException, ValueError) as exc:
                raise InvalidInput(
                    f"rows {self.rows}..: the columns changed type from the first chunk ({exc})",
                    field="input",
                ) from None
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _progress() -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,  # a log file gets the summary line, not bar frames
    )


@click.command()
@click.argument("ref")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="The Parquet file to write."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Rows per chunk (memory is bounded by one chunk).",
)
@click.option(
    "--keep-inputs/--no-keep-inputs",
    default=True,
    show_default=True,
    help="Copy the input columns into the output beside the predictions.",
)
@click.option(
    "--columns", default=None, help="Comma-separated feature columns (default: as the signature says)."
)
@click.option(
    "--prediction-column", default="prediction", show_default=True, help="Name of the predictions' column."
)
@click.option(
    "--timestamp-column",
    default=None,
    help="Feature-view models: the entity time column for point-in-time values "
    f"(default {DEFAULT_TIMESTAMP_COLUMN}, when the input has it).",
)
@click.option(
    "--online", is_flag=True, help="Feature-view models: the latest online values, even with a time column."
)
@click.option(
    "--allow-missing",
    is_flag=True,
    help="Feature-view models: score rows whose entity has no feature values (NaN) instead of refusing.",
)
@pass_ctx
def predict(
    ctx: Context,
    ref: str,
    input_path: Path,
    output: Path,
    batch_size: int,
    keep_inputs: bool,
    columns: str | None,
    prediction_column: str,
    timestamp_column: str | None,
    online: bool,
    allow_missing: bool,
) -> None:
    """Score INPUT (.parquet or .csv) with model REF into a Parquet file, chunk by chunk.

    REF is NAME@ALIAS (e.g. digits@champion), NAME/VERSION or NAME (the latest).
    A model registered with feature views as inputs takes entity keys: its
    features are looked up point-in-time at the rows' event_timestamp (or
    --timestamp-column) when the input has it, else from the online store.
    """
    if input_path.suffix.lower() not in FORMATS:
        raise click.BadParameter(f"{input_path} must be a .parquet or .csv file", param_hint="INPUT")
    if not input_path.is_file():
        raise click.BadParameter(f"no such file: {input_path}", param_hint="INPUT")
    if output.suffix.lower() != ".parquet":
        raise click.BadParameter(f"{output} must end with .parquet", param_hint="--output")
    if not output.parent.is_dir():
        raise click.BadParameter(f"no such folder: {output.parent}", param_hint="--output")
    if not prediction_column:
        raise click.BadParameter("must not be empty", param_hint="--prediction-column")
    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns is not None else None
    if chosen is not None and not chosen:
        raise click.BadParameter("name at least one column", param_hint="--columns")
    if online and timestamp_column is not None:
        raise click.BadParameter("give --timestamp-column or --online, not both", param_hint="--online")

    started = time.monotonic()
    model = ctx.services.registry.load(ref)  # verified against the sha256 recorded at registration
    refs = model.version.manifest.get("features")
    features = None
    if refs:
        if chosen is not None:
            raise click.BadParameter(
                f"{ref} looks its features up by entity ({', '.join(refs)}); it takes no columns",
                param_hint="--columns",
            )
        features = FeatureInputs(
            ctx.services.features,
            model,
            refs,
            timestamp_column=timestamp_column,
            online=online,
            allow_missing=allow_missing,
        )
    total, chunks = read_chunks(input_path, batch_size)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    scorer = _Scorer(
        model, tmp, keep_inputs=keep_inputs, column=prediction_column, columns=chosen, features=features
    )
    label = f"{model.version.name} v{model.version.version}"
    try:
        with _progress() as progress:
            task = progress.add_task(f"scoring with {label}", total=total)
            for batch in chunks:
                progress.advance(task, scorer.score(batch))
        scorer.close()
        if scorer.rows == 0:
            raise InvalidInput(f"{input_path} has no rows to score", field="input")
        os.replace(tmp, output)
    finally:
        scorer.close()
        tmp.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    looked_up = "" if features is None else f"features: {features.source}; "
    click.echo(
        f"scored {scorer.rows:,} rows with {model.version.name} version {model.version.version} "
        f"-> {output}  ({looked_up}{seconds:.1f} s, {scorer.rows / max(seconds, 1e-9):,.0f} rows/s)"
    )
