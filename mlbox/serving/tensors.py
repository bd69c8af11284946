"""Between request bodies and models: payloads shaped to a signature, outputs made JSON.

A decoded body is a `Payload` whose values are still what the body held
(Python lists, or arrays for binary tensors): only `conform`, which knows the
model's signature, decides whether rows are one tensor or a table's columns,
so a mixed row like ``[3, "red"]`` is never flattened into strings. Model
outputs become named arrays (`to_outputs`) which the batcher splits by row
and the codecs encode.

Errors name the field: `InvalidContent` (422) when a body's values contradict
themselves (ragged rows, nothing to score), `SchemaMismatch` (422) when they
do not fit the model (the status rule is in `mlbox.api.serving`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from mlbox.registry.signature import Schema, SchemaMismatch, TensorSpec, validate
from mlbox.serving.errors import InvalidContent

PayloadKind = Literal["rows", "named", "columns"]


class Payload:
    """What a body holds: ``rows`` (a list of rows or an array), ``named`` tensors, or ``columns``.

    ``datatypes`` (OIP bodies only) are the datatypes the client declared per input, so that a
    refusal can speak the client's language (``expected FP64, got BYTES``).
    ``bools`` is False when the body cannot hold a JSON ``true`` or ``false`` at all (its bytes
    have neither word), which spares `as_array` looking for one among numbers.
    """

    __slots__ = ("bools", "datatypes", "kind", "value")

    def __init__(
        self, kind: PayloadKind, value: Any, datatypes: dict[str, str] | None = None, bools: bool = True
    ) -> None:
        self.kind = kind
        self.value = value
        self.datatypes = datatypes
        self.bools = bools


def may_hold_bools(body: bytes) -> bool:
    """Whether a JSON body could hold ``true`` or ``false`` (a fast byte search, no parsing)."""
    return b"true" in body or b"false" in body


def holds_bool(values: Any) -> bool:
    """Whether nested lists hold a ``bool`` anywhere (iterative: a deep body cannot overflow the stack).

    numpy turns ``[1.5, true]`` into ``[1.5, 1.0]``: a bool would be scored as a number
    without anyone asking, so the lists are looked at before numpy sees them.
    """
    stack = [values]
    while stack:
        value = stack.pop()
        if value is True or value is False:
            return True
        if isinstance(value, list):
            stack.extend(value)
    return False


def as_array(values: Any, field: str, bools: bool = True) -> np.ndarray:
    """An array from JSON values, refusing ragged lists and never turning numbers into strings.

    Bools mixed with numbers are refused here (numpy would make them numbers); an array of
    bools only is left to the signature, which takes it for a boolean input and nothing else.
    """
    if isinstance(values, np.ndarray):
        return values
    try:
        arr = np.array(values)
    except (ValueError, TypeError) as exc:
        raise InvalidContent(f"{field}: not a rectangular array ({_first_line(exc)})", field=field) from None
    if bools and arr.dtype.kind in "iuf" and holds_bool(values):
        raise InvalidContent(f"{field}: holds true/false among numbers; a bool is not a number", field=field)
    if arr.dtype.kind == "U":
        mixed = np.array(values, dtype=object)
        if not all(isinstance(v, str) for v in mixed.flat):
            return mixed
    return arr


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _rows_of(value: Any, field: str) -> int:
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) == 0:
        raise SchemaMismatch(f"{field}: needs a batch dimension (one entry per row)", field=field)
    return int(shape[0])


def batch_rows(inputs: Any) -> int:
    """Rows in validated inputs (an array or a dict of arrays), checking every input agrees."""
    if isinstance(inputs, Mapping):
        rows: int | None = None
        for name, value in inputs.items():
            n = _rows_of(value, str(name))
            if rows is not None and n != rows:
                raise SchemaMismatch(
                    f"{name}: has {n} rows where the other inputs have {rows}", field=str(name)
                )
            rows = n
        if rows is None:
            raise InvalidContent("no inputs", field="inputs")
    else:
        rows = _rows_of(inputs, "input")
    if rows == 0:
        raise InvalidContent("no rows to score", field="inputs")
    return rows


def _columns_to_matrix(columns: Mapping[str, Any], width: int) -> np.ndarray:
    arrays = [as_array(v, k) for k, v in columns.items()]
    if width == 1 and len(arrays) == 1:
        return arrays[0]
    if any(a.ndim != 1 for a in arrays):
        bad = next(k for k, a in zip(columns, arrays, strict=True) if a.ndim != 1)
        raise SchemaMismatch(f"{bad}: a column must hold one value per row", field=bad)
    return np.column_stack(arrays)


def _rows_to_columns(rows: Any, names: list[str], field: str) -> dict[str, np.ndarray]:
    if isinstance(rows, np.ndarray):
        matrix = rows
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            raise SchemaMismatch(
                f"{field}: expected rows of {len(names)} values (columns {names}),"
                f" got shape {list(matrix.shape)}",
                field=field,
            )
        return {n: matrix[:, i] for i, n in enumerate(names)}
    if not isinstance(rows, list):
        raise InvalidContent(f"{field}: expected a list of rows", field=field)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            raise SchemaMismatch(
                f"{field}[{i}]: expected a row of {len(names)} values (columns {names})",
                field=f"{field}[{i}]",
            )
    return {n: as_array([row[i] for row in rows], n) for i, n in enumerate(names)}


@functools.lru_cache(maxsize=256)
def _numpy_dtype(name: str) -> np.dtype[Any] | None:
    try:
        return np.dtype(name)
    except TypeError:
        return None


def _exact(spec: TensorSpec, arr: np.ndarray) -> bool:
    """Whether ``arr`` already has the spec's exact dtype and shape (so `validate` would return it as is).

    The common scoring request (one FP64 tensor for a float64 model) then skips
    `validate`, whose dtype naming alone costs more than the rest of the check.
    """
    if arr.dtype != _numpy_dtype(spec.dtype) or arr.dtype.kind == "O":
        return False
    shape = arr.shape
    if len(shape) != len(spec.shape) or not shape or shape[0] == 0:
        return False
    return all(expected in (-1, got) for expected, got in zip(spec.shape, shape, strict=True))


def _expected_dtypes(schema: Schema) -> dict[str, str]:
    if schema.kind == "columns":
        return {c.name: c.dtype for c in schema.columns}
    return {t.name or "input": t.dtype for t in schema.tensors}


def check_declared(schema: Schema, datatypes: Mapping[str, str]) -> None:
    """Refuse a ``BYTES`` tensor sent to a numeric or boolean input, naming the OIP datatype expected.

    Without this the refusal would come from `validate` in numpy's words
    (``expected dtype float64, got string``), which an OIP client has to translate.
    """
    if "BYTES" not in datatypes.values():
        return
    expected = _expected_dtypes(schema)
    for name, declared in datatypes.items():
        dtype = expected.get(name)
        if declared == "BYTES" and dtype in NUMPY_TO_OIP:
            raise SchemaMismatch(
                f"{name}: expected datatype {NUMPY_TO_OIP[dtype]} (dtype {dtype}), got BYTES", field=name
            )


def conform(schema: Schema | None, payload: Payload, field: str = "inputs") -> tuple[Any, int]:
    """Inputs shaped, validated and cast for the model, and their row count.

    Names must match the signature exactly: an input the model does not take
    is refused (422 naming it), never ignored.
    """
    kind, value = payload.kind, payload.value
    if schema is not None and payload.datatypes is not None:
        check_declared(schema, payload.datatypes)
    if schema is None:  # no signature: pass through what the body held
        if kind == "rows":
            inputs: Any = as_array(value, field, payload.bools)
        else:
            inputs = {k: as_array(v, k, payload.bools) for k, v in value.items()}
            if kind == "named" and len(inputs) == 1:
                inputs = next(iter(inputs.values()))
        return inputs, batch_rows(inputs)
    if schema.kind == "tensor":
        spec = schema.tensors[0]
        expected = spec.name or "input"
        if kind == "rows":
            inputs = as_array(value, field, payload.bools)
        elif kind == "named":
            for name in value:
                if name != expected:
                    raise SchemaMismatch(
                        f"{name}: unexpected input; this model takes one input named {expected!r}", field=name
                    )
            inputs = as_array(value[expected], expected, payload.bools)
        else:
            inputs = _columns_to_matrix(value, spec.shape[1] if len(spec.shape) == 2 else 1)
        if _exact(spec, inputs):
            return inputs, int(inputs.shape[0])
    elif schema.kind == "tensors":
        if kind == "rows":
            if len(schema.tensors) != 1:
                raise SchemaMismatch(
                    f"expected named inputs {schema.names()}, got a list of rows", field=field
                )
            inputs = {schema.names()[0]: as_array(value, field, payload.bools)}
        else:
            inputs = {str(k): as_array(v, str(k), payload.bools) for k, v in value.items()}
    else:  # columns
        names = schema.names()
        if kind == "rows":
            inputs = _rows_to_columns(value, names, field)
        else:
            inputs = {}
            for k, v in value.items():
                arr = as_array(v, str(k), payload.bools)
                if kind == "named" and arr.ndim == 2 and arr.shape[1] == 1:  # an OIP column as [N, 1]
                    arr = arr[:, 0]
                inputs[str(k)] = arr
    validated = validate(schema, inputs)
    return validated, batch_rows(validated)


# -- outputs ---------------------------------------------------------------------


def _frame_columns(result: Any) -> dict[str, np.ndarray] | None:
    module = type(result).__module__
    if module.startswith(("pandas", "polars")) and hasattr(result, "columns"):
        return {str(c): np.asarray(result[c].to_numpy()) for c in result.columns}
    if module.startswith("pandas") and hasattr(result, "to_numpy") and hasattr(result, "name"):
        return {str(result.name) if result.name is not None else "": np.asarray(result.to_numpy())}
    return None


def _array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        return np.asarray(value.detach().cpu().numpy())
    return np.asarray(value)


def to_outputs(result: Any, default_name: str) -> dict[str, np.ndarray]:
    """A model's return value as named arrays (an array, a dict, a tuple of arrays, a frame)."""
    if isinstance(result, np.ndarray):
        return {default_name: result}
    if isinstance(result, Mapping):
        return {str(k): _array(v) for k, v in result.items()}
    if isinstance(result, tuple) and result and all(hasattr(v, "shape") for v in result):
        return {f"output_{i}": _array(v) for i, v in enumerate(result)}
    columns = _frame_columns(result)
    if columns is not None:
        if "" in columns:
            columns[default_name] = columns.pop("")
        return columns
    return {default_name: _array(result)}


NUMPY_TO_OIP = {
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}


OIP_BY_DTYPE = {np.dtype(name): oip for name, oip in NUMPY_TO_OIP.items()}


def jsonable(arr: np.ndarray) -> tuple[str, Any]:
    """An output's OIP datatype and its values as JSON-ready nested lists."""
    datatype = OIP_BY_DTYPE.get(arr.dtype)  # by dtype object: ``dtype.name`` is slow to compute
    if datatype is not None:
        return datatype, arr.tolist()
    kind = arr.dtype.kind
    if kind in "biuf":
        return NUMPY_TO_OIP.get(arr.dtype.name, "FP64"), arr.tolist()
    if kind == "O":
        values = arr.tolist()
        try:
            concrete = np.asarray(values)
        except (ValueError, TypeError):
            concrete = arr
        if concrete.dtype.kind in "biuf" and concrete.shape == arr.shape:
            return jsonable(concrete)
        return "BYTES", _strings(values)
    if kind == "S":
        return "BYTES", _strings(arr.tolist())
    if kind == "M":
        return "BYTES", np.datetime_as_string(arr).tolist()
    return "BYTES", arr.tolist()


def _strings(values: Any) -> Any:
    if isinstance(values, list):
        return [_strings(v) for v in values]
    if isinstance(values, bytes):
        return values.decode("utf-8", errors="replace")
    if values is None or isinstance(values, (str, int, float, bool)):
        return values
    return str(values)
