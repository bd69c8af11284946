"""Model signatures: what a model takes and gives, inferred once, checked on every call.

A schema is one of three kinds, chosen by the example input at registration:

* ``tensor``: one array, ``dtype`` plus ``shape`` with ``-1`` for the batch
  dimension (a numpy array, a list of rows);
* ``tensors``: named arrays (a dict of arrays), each with its dtype and shape;
* ``columns``: a table (a polars or pandas frame), column names and dtypes.

`validate` is what the scoring endpoint calls before a model sees a request:
it raises `SchemaMismatch` (an `InvalidInput` answered with 422) whose
``field`` names the offending input or column and whose message says what was
expected and what came. In tolerant mode (the default) casts that lose
nothing are made instead of refused: bool or int into float, a narrower
float or int into a wider one, any float into float32 (what a JSON number
becomes), and an int into a narrower int when every value fits.

Pure: numpy only; frames are recognised by their module name, so neither
polars nor pandas is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec
import numpy as np

from mlbox.store.errors import InvalidInput

SchemaKind = Literal["tensor", "tensors", "columns"]


class SchemaMismatch(InvalidInput):
    """Inputs that do not match the model's signature (the scoring API answers 422)."""

    http_status = 422


def shape_text(shape: Sequence[int]) -> str:
    """``[*, 4]``: ``*`` for the batch (any size) dimension."""
    return "[" + ", ".join("*" if d < 0 else str(d) for d in shape) + "]"


class TensorSpec(msgspec.Struct, frozen=True):
    dtype: str
    shape: list[int]
    name: str | None = None

    def brief(self) -> str:
        """``float32 [*, 64]``."""
        return f"{self.dtype} {shape_text(self.shape)}"


class ColumnSpec(msgspec.Struct, frozen=True):
    name: str
    dtype: str


class Schema(msgspec.Struct, frozen=True):
    kind: SchemaKind
    tensors: list[TensorSpec] = []
    columns: list[ColumnSpec] = []

    def names(self) -> list[str]:
        if self.kind == "columns":
            return [c.name for c in self.columns]
        return [t.name or "input" for t in self.tensors]

    def brief(self) -> str:
        """For a table cell: ``float64 [*, 4]``, ``3 tensors``, ``12 columns``."""
        if self.kind == "tensor" and self.tensors:
            return self.tensors[0].brief()
        if self.kind == "tensors":
            return f"{len(self.tensors)} tensors"
        return f"{len(self.columns)} columns"

    def line(self, max_columns: int = 8) -> str:
        """For a line of its own: ``tensor float32 [*, 64]``, every named tensor, or the
        first ``max_columns`` columns of a table and a count of the rest."""
        if self.kind == "tensor" and self.tensors:
            return f"tensor {self.tensors[0].brief()}"
        if self.kind == "tensors":
            return "tensors " + ", ".join(f"{t.name}: {t.brief()}" for t in self.tensors)
        shown = ", ".join(f"{c.name}: {c.dtype}" for c in self.columns[:max_columns])
        more = len(self.columns) - max_columns
        return f"{len(self.columns)} columns {shown}" + (f", … (+{more} more)" if more > 0 else "")


class Signature(msgspec.Struct, frozen=True):
    inputs: Schema
    outputs: Schema | None = None

    def brief(self) -> str:
        """For a table cell: ``float64 [*, 4] → int64 [*]`` (see `Schema.brief`)."""
        if self.outputs is None:
            return self.inputs.brief()
        return f"{self.inputs.brief()} → {self.outputs.brief()}"


# -- dtypes --------------------------------------------------------------------


def _object_dtype(values: Any) -> str:
    """``string``, ``bytes`` or ``object`` from the first non-null value of an object array."""
    for v in np.asarray(values, dtype=object).ravel():
        if v is None or (isinstance(v, float) and v != v):
            continue
        if isinstance(v, str):
            return "string"
        if isinstance(v, bytes):
            return "bytes"
        return "object"
    return "string"


def array_dtype(arr: np.ndarray) -> str:
    """The signature name of a numpy dtype: numpy's name, ``string`` or ``bytes``."""
    kind = arr.dtype.kind
    if kind == "U":
        return "string"
    if kind == "S":
        return "bytes"
    if kind == "O":
        return _object_dtype(arr)
    if kind == "M":
        return "datetime"
    return arr.dtype.name


def _frame_library(obj: object) -> str | None:
    module = type(obj).__module__
    if module.startswith("polars") and hasattr(obj, "columns") and hasattr(obj, "schema"):
        return "polars"
    if module.startswith("pandas") and hasattr(obj, "columns") and hasattr(obj, "dtypes"):
        return "pandas"
    return None


def _polars_dtype(dtype: object) -> str:
    text = str(dtype)
    base = text.split("(")[0]
    if base in ("String", "Utf8"):
        return "string"
    if base == "Boolean":
        return "bool"
    if base == "Datetime":
        return "datetime"
    if base in ("Categorical", "Enum"):
        return "category"
    if base == "Binary":
        return "bytes"
    return base.lower()


def _pandas_dtype(series: Any) -> str:
    dtype = series.dtype
    name = str(dtype)
    if name == "category":
        return "category"
    if name in ("str", "string") or name.startswith("string["):
        return "string"
    kind = getattr(dtype, "kind", "O")
    if kind == "M":
        return "datetime"
    if kind == "O":
        return _object_dtype(series.to_numpy())
    if kind in "biuf":
        return name.lower() if name[0].isupper() else np.dtype(kind + str(dtype.itemsize)).name
    return name


def _columns_of(frame: Any, library: str) -> dict[str, str]:
    if library == "polars":
        return {str(name): _polars_dtype(dtype) for name, dtype in frame.schema.items()}
    return {str(name): _pandas_dtype(frame[name]) for name in frame.columns}


def _as_array(value: Any, field: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        return np.asarray(value.detach().cpu().numpy())
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise SchemaMismatch(f"{field}: cannot be read as an array ({exc})", field=field) from None


# -- inference -----------------------------------------------------------------


def _tensor_spec(arr: np.ndarray, name: str | None) -> TensorSpec:
    shape = [-1, *arr.shape[1:]] if arr.ndim else []
    return TensorSpec(dtype=array_dtype(arr), shape=[int(d) for d in shape], name=name)


def infer_schema(value: Any) -> Schema:
    """The schema of an example input or output (the first dimension is the batch)."""
    library = _frame_library(value)
    if library is not None:
        cols = _columns_of(value, library)
        return Schema("columns", columns=[ColumnSpec(n, d) for n, d in cols.items()])
    if isinstance(value, Mapping):
        if not value:
            raise InvalidInput("an empty dict has no schema", field="example_input")
        return Schema(
            "tensors", tensors=[_tensor_spec(_as_array(v, str(k)), str(k)) for k, v in value.items()]
        )
    if isinstance(value, tuple) and value and all(isinstance(v, np.ndarray) for v in value):
        return Schema("tensors", tensors=[_tensor_spec(v, f"output_{i}") for i, v in enumerate(value)])
    return Schema("tensor", tensors=[_tensor_spec(_as_array(value, "input"), None)])


def infer_signature(example_input: Any, example_output: Any | None = None) -> Signature:
    return Signature(
        inputs=infer_schema(example_input),
        outputs=None if example_output is None else infer_schema(example_output),
    )


# -- validation ----------------------------------------------------------------


def _describe(shape: Sequence[int]) -> str:
    return "[" + ", ".join("N" if d == -1 else str(d) for d in shape) + "]"


_NUMERIC = {"b", "i", "u", "f"}


def _cast_error(field: str, expected: str, got: str, why: str = "") -> SchemaMismatch:
    return SchemaMismatch(f"{field}: expected dtype {expected}, got {got}{why}", field=field)


def cast_values(values: np.ndarray, expected: str, field: str, *, tolerant: bool) -> np.ndarray:
    """``values`` as ``expected`` when that is exact or (tolerant) lossless; else `SchemaMismatch`."""
    got = array_dtype(values)
    if got == expected:
        return values
    if expected in ("string", "bytes", "object", "datetime", "category", "date"):
        if expected == "object" and tolerant:
            return values
        raise _cast_error(field, expected, got)
    try:
        target = np.dtype(expected)
    except TypeError:
        raise _cast_error(field, expected, got) from None
    source = values.dtype
    if not tolerant or source.kind not in _NUMERIC or target.kind not in _NUMERIC:
        raise _cast_error(field, expected, got)
    if source.kind == "b" and target.kind != "b":
        raise _cast_error(field, expected, got, " (true/false is not a number)")
    if target.kind == "f":
        return values.astype(target)
    if source.kind == "f":
        raise _cast_error(field, expected, got, " (a float is not cast to an integer)")
    if target.kind == "b":
        raise _cast_error(field, expected, got)
    if values.size and source.kind != "b":
        info = np.iinfo(target)
        lo, hi = int(values.min()), int(values.max())
        if lo < info.min or hi > info.max:
            raise _cast_error(field, expected, got, f" (values {lo}..{hi} do not fit)")
    return values.astype(target)


def _check_tensor(spec: TensorSpec, value: Any, field: str, *, tolerant: bool) -> np.ndarray:
    arr = _as_array(value, field)
    if arr.dtype.kind == "O" and arr.ndim >= 1 and any(isinstance(v, (list, np.ndarray)) for v in arr.flat):
        raise SchemaMismatch(f"{field}: rows of unequal length (a ragged array)", field=field)
    shape = list(arr.shape)
    if len(shape) != len(spec.shape) or any(
        e not in (-1, g) for e, g in zip(spec.shape, shape, strict=False)
    ):
        raise SchemaMismatch(
            f"{field}: expected shape {_describe(spec.shape)}, got {_describe(shape)}", field=field
        )
    return cast_values(arr, spec.dtype, field, tolerant=tolerant)


def _validate_columns(schema: Schema, inputs: Any, *, tolerant: bool) -> Any:
    library = _frame_library(inputs)
    if library is None and not isinstance(inputs, Mapping):
        raise SchemaMismatch(
            f"expected a table with columns {schema.names()}, got {type(inputs).__name__}", field="inputs"
        )
    got_names = [str(c) for c in inputs.columns] if library else [str(k) for k in inputs]
    _check_names(schema.names(), got_names, "column")
    if library is None:
        out: dict[str, np.ndarray] = {}
        length: int | None = None
        for col in schema.columns:
            arr = _as_array(inputs[col.name], col.name)
            if arr.ndim != 1:
                raise SchemaMismatch(
                    f"{col.name}: expected a column (one dimension), got shape {list(arr.shape)}",
                    field=col.name,
                )
            if length is not None and len(arr) != length:
                raise SchemaMismatch(
                    f"{col.name}: has {len(arr)} values where the other columns have {length}",
                    field=col.name,
                )
            length = len(arr)
            out[col.name] = cast_values(arr, col.dtype, col.name, tolerant=tolerant)
        return out
    dtypes = _columns_of(inputs, library)
    casts: dict[str, np.ndarray] = {}
    for col in schema.columns:
        if dtypes[col.name] == col.dtype:
            continue
        values = inputs[col.name].to_numpy()
        casts[col.name] = cast_values(values, col.dtype, col.name, tolerant=tolerant)
    order = schema.names()
    if library == "polars":
        import polars as pl  # only reached with a polars frame in hand

        frame = inputs.with_columns([pl.Series(n, v) for n, v in casts.items()]) if casts else inputs
        return frame.select(order)
    frame = inputs.assign(**casts) if casts else inputs
    return frame[order]


def _check_names(expected: list[str], got: list[str], what: str) -> None:
    missing = [n for n in expected if n not in got]
    if missing:
        raise SchemaMismatch(
            f"{missing[0]}: missing {what}; expected {what}s {expected}, got {got}", field=missing[0]
        )
    extra = [n for n in got if n not in expected]
    if extra:
        raise SchemaMismatch(f"{extra[0]}: unexpected {what}; expected {what}s {expected}", field=extra[0])


def validate(schema: Schema, inputs: Any, *, tolerant: bool = True) -> Any:
    """Check ``inputs`` against ``schema``; returns them cast and ordered as the schema says.

    A ``tensor`` schema gives back an array, ``tensors`` a dict of arrays in
    the schema's order, ``columns`` the frame given (columns selected in order,
    lossless casts applied) or, for a dict of columns, a dict of 1-D arrays.
    """
    if schema.kind == "columns":
        return _validate_columns(schema, inputs, tolerant=tolerant)
    if schema.kind == "tensors":
        if not isinstance(inputs, Mapping):
            raise SchemaMismatch(
                f"expected named inputs {schema.names()}, got {type(inputs).__name__}", field="inputs"
            )
        _check_names(schema.names(), [str(k) for k in inputs], "input")
        return {
            spec.name or "input": _check_tensor(
                spec, inputs[spec.name or "input"], spec.name or "input", tolerant=tolerant
            )
            for spec in schema.tensors
        }
    spec = schema.tensors[0]
    if tolerant and _frame_library(inputs) is not None:
        inputs = inputs.to_numpy()
    if isinstance(inputs, Mapping):
        if len(inputs) != 1:
            raise SchemaMismatch(
                f"expected one input tensor, got named inputs {[str(k) for k in inputs]}", field="inputs"
            )
        ((_, inputs),) = inputs.items()
    return _check_tensor(spec, inputs, spec.name or "input", tolerant=tolerant)
