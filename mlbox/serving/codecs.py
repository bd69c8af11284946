"""Scoring request bodies in, response bodies out: OIP V2 tensors, MLflow bodies, CSV.

Pure functions over bytes. Each decoder returns a `Payload` for
`mlbox.serving.tensors.conform`; each encoder returns the JSON bytes sent.

The Open Inference Protocol checks that other servers skip: a tensor whose
``data`` does not hold ``prod(shape)`` values is refused (MLServer answers 500),
``data`` must hold values of its ``datatype`` (no string silently parsed as a
number, no float truncated to an int, no int out of its type's range), and
the binary tensor extension (``Inference-Header-Content-Length``) is read
with the same checks.

Statuses follow the rule in `mlbox.api.serving`: a body that cannot be read
as a request (malformed JSON or CSV, a missing or mistyped field, broken
binary framing) is `InvalidInput` (400); a body that was read but whose
values cannot be scored (an unknown datatype, values not of the datatype,
a count that is not the shape's product, a negative dimension, ragged or
empty rows) is `InvalidContent` (422). Both name the field.
"""

from __future__ import annotations

import io
import math
from typing import Any

import msgspec
import numpy as np

from mlbox.registry.signature import SchemaMismatch
from mlbox.serving.errors import InvalidContent
from mlbox.serving.jsondepth import check_json_depth
from mlbox.serving.tensors import OIP_BY_DTYPE, Payload, holds_bool, jsonable, may_hold_bools
from mlbox.store.errors import InvalidInput

OIP_TO_NUMPY: dict[str, Any] = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": object,
}


class InputTensor(msgspec.Struct):
    name: str
    shape: list[int]
    datatype: str
    data: msgspec.Raw = msgspec.Raw()  # its bytes, decoded by datatype (`_json_values`); empty: absent
    parameters: dict[str, Any] | None = None


class RequestedOutput(msgspec.Struct):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(msgspec.Struct):
    inputs: list[InputTensor]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestedOutput] | None = None


class OipRequest:
    """A decoded OIP request: its inputs as a ``named`` payload, id and requested outputs.

    ``binary``: the outputs to answer as raw bytes (the binary tensor extension:
    ``"binary_data": true`` on a requested output, or ``"binary_data_output": true``
    on the request for all of them, ``"*"``).
    """

    __slots__ = ("binary", "id", "outputs", "payload")

    def __init__(
        self,
        payload: Payload,
        request_id: str | None,
        outputs: list[str] | None,
        binary: frozenset[str] = frozenset(),
    ) -> None:
        self.payload = payload
        self.id = request_id
        self.outputs = outputs
        self.binary = binary


_decoder = msgspec.json.Decoder(InferenceRequest)
_any_decoder = msgspec.json.Decoder()

# A tensor's flat ``data`` as the list its datatype allows: msgspec refuses a bool among
# floats, a float among ints, a string, a nested list, so what these accept needs no
# further look; anything they refuse goes the general way (`_json_tensor`), which words it.
_FLAT_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "FP64": msgspec.json.Decoder(list[float]),
    "INT64": msgspec.json.Decoder(list[int]),
    "BOOL": msgspec.json.Decoder(list[bool]),
}
_FLAT_AS = {
    **{t: ("FP64", np.float64) for t in ("FP16", "FP32", "FP64")},
    **{t: ("INT64", np.int64) for t in ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32")},
    "BOOL": ("BOOL", np.bool_),
}


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


def encode_json(obj: Any) -> bytes:
    return _encoder.encode(obj)


def _validation_field(exc: msgspec.ValidationError) -> str:
    """``$.inputs[0].shape`` from msgspec's message, as ``inputs[0].shape``."""
    text = str(exc)
    marker = "- at `$"
    if marker in text:
        return text.split(marker, 1)[1].rstrip("`").lstrip(".") or "body"
    return "body"


def decode_json_body(body: bytes) -> Any:
    check_json_depth(body)
    try:
        return _any_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"malformed JSON body: {exc}", field="body") from None


# -- Open Inference Protocol V2 --------------------------------------------------------


def _check_shape(shape: list[int], field: str) -> int:
    if any(d < 0 for d in shape):
        raise InvalidContent(f"{field}.shape: dimensions must not be negative, got {shape}", field=field)
    return math.prod(shape)


def _kind_fits(arr: np.ndarray, datatype: str) -> bool:
    kind = arr.dtype.kind
    if arr.size == 0:
        return True
    if datatype == "BOOL":
        return kind == "b"
    if datatype.startswith("FP"):
        return kind in "iuf"
    if kind not in "iu":
        return False
    info = np.iinfo(OIP_TO_NUMPY[datatype])
    return bool(int(arr.min()) >= info.min and int(arr.max()) <= info.max)


def _flat_tensor(t: InputTensor, size: int) -> np.ndarray | None:
    """A flat numeric or boolean ``data`` straight into a typed array, or None to go the general way.

    Why: ``np.array`` over decoded JSON values looks at every Python number twice
    (to find a dtype, then to convert); ``np.fromiter`` with the dtype and count
    known converts each once into a preallocated array, and the typed decoder
    has already refused what does not belong (bools, strings, nesting), so the
    per-element look for bools is not needed either (~2.5x less time at 2,000 values).
    """
    plan = _FLAT_AS.get(t.datatype)
    if plan is None:
        return None
    kind, dtype = plan
    try:
        values = _FLAT_DECODERS[kind].decode(t.data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if len(values) != size:
        return None  # the general way words the count
    try:
        arr: np.ndarray = np.fromiter(values, dtype=dtype, count=size)
    except (OverflowError, ValueError):  # an int beyond int64: the general way words it
        return None
    if t.datatype != kind and not _kind_fits(arr, t.datatype):
        return None
    arr = arr.reshape(t.shape)
    target = OIP_TO_NUMPY[t.datatype]
    return arr if arr.dtype == target else arr.astype(target)


def _json_tensor(t: InputTensor, field: str, size: int, data_field: str, bools: bool) -> np.ndarray:
    """A JSON tensor as its datatype; ``bools`` (the body holds ``true``/``false`` somewhere)
    asks for a look for bools among numbers, which numpy would silently make numbers."""
    if not len(t.data):
        raise InvalidInput(f"{field}: has no 'data' (and no binary_data_size)", field=field)
    flat = _flat_tensor(t, size)
    if flat is not None:
        return flat
    data = _any_decoder.decode(t.data)
    if t.datatype == "BYTES":
        try:
            arr = np.array(data, dtype=object)
        except ValueError as exc:
            raise InvalidContent(f"{field}.data: not a rectangular array ({exc})", field=field) from None
        if not all(isinstance(v, str) for v in arr.flat):
            raise InvalidContent(f"{field}.data: BYTES data must be strings", field=field)
    else:
        try:
            arr = np.array(data)
        except (ValueError, TypeError) as exc:
            raise InvalidContent(f"{field}.data: not a rectangular array ({exc})", field=field) from None
        if t.datatype != "BOOL" and (arr.dtype.kind == "b" or (bools and holds_bool(data))):
            raise InvalidContent(
                f"{data_field}: holds true/false, which is not {t.datatype}; a bool is not a number",
                field=data_field,
            )
        if not _kind_fits(arr, t.datatype):
            raise InvalidContent(
                f"{field}.data: holds values that are not {t.datatype} (or out of its range)", field=field
            )
    if arr.size != size:
        raise InvalidContent(
            f"{field}.data: has {arr.size} values but shape {t.shape} needs {size}", field=field
        )
    arr = arr.reshape(t.shape)
    dtype = OIP_TO_NUMPY[t.datatype]
    return arr if dtype is object or arr.dtype == dtype else arr.astype(dtype)


def _binary_tensor(t: InputTensor, field: str, size: int, chunk: memoryview) -> np.ndarray:
    """The tensor's bytes as its array; numeric ones are a view of the request body (no copy)."""
    if t.datatype == "BYTES":
        chunk = memoryview(bytes(chunk))
        items: list[str] = []
        pos = 0
        while pos < len(chunk):
            if pos + 4 > len(chunk):
                raise InvalidInput(f"{field}: truncated BYTES element", field=field)
            n = int.from_bytes(chunk[pos : pos + 4], "little")
            raw = chunk[pos + 4 : pos + 4 + n]
            if len(raw) != n:
                raise InvalidInput(f"{field}: truncated BYTES element", field=field)
            items.append(bytes(raw).decode("utf-8", errors="surrogateescape"))
            pos += 4 + n
        if len(items) != size:
            raise InvalidContent(
                f"{field}: has {len(items)} values but shape {t.shape} needs {size}", field=field
            )
        arr = np.empty(size, dtype=object)
        arr[:] = items
        return arr.reshape(t.shape)
    dtype = np.dtype(OIP_TO_NUMPY[t.datatype])
    if len(chunk) != size * dtype.itemsize:
        raise InvalidContent(
            f"{field}: binary data has {len(chunk)} bytes but shape {t.shape} of {t.datatype} needs"
            f" {size * dtype.itemsize}",
            field=field,
        )
    return np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False).reshape(t.shape)


def decode_oip(body: bytes, header_length: int | None = None) -> OipRequest:
    """An OIP V2 inference request; ``header_length`` for the binary tensor extension."""
    if header_length is not None:
        if header_length < 0 or header_length > len(body):
            raise InvalidInput(
                f"Inference-Header-Content-Length {header_length} exceeds the body ({len(body)} bytes)",
                field="inference-header-content-length",
            )
        header, binary = body[:header_length], memoryview(body)[header_length:]
    else:
        quick = _spliced_request(body)
        if quick is not None:
            return quick
        header, binary = body, memoryview(b"")
    check_json_depth(header)
    try:
        req = _decoder.decode(header)
    except msgspec.ValidationError as exc:
        field = _validation_field(exc)
        raise InvalidInput(f"{field}: {str(exc).split(' - at ')[0]}", field=field) from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"malformed JSON body: {exc}", field="body") from None
    if not binary:
        common = _float_request(req)
        if common is not None:
            return common
    if not req.inputs:
        raise InvalidContent("inputs: at least one input tensor is needed", field="inputs")
    named: dict[str, np.ndarray] = {}
    offset = 0
    bools = may_hold_bools(header)
    for i, t in enumerate(req.inputs):
        field = t.name or f"inputs[{i}]"
        if t.name in named:
            raise InvalidContent(f"{field}: given twice", field=field)
        if t.datatype not in OIP_TO_NUMPY:
            raise InvalidContent(
                f"{field}.datatype: unknown datatype {t.datatype!r}; expected one of {list(OIP_TO_NUMPY)}",
                field=field,
            )
        size = _check_shape(t.shape, field)
        binary_size = (t.parameters or {}).get("binary_data_size")
        if binary_size is not None:
            if not isinstance(binary_size, int) or binary_size < 0 or offset + binary_size > len(binary):
                raise InvalidInput(f"{field}: binary_data_size {binary_size!r} exceeds the body", field=field)
            named[t.name] = _binary_tensor(t, field, size, binary[offset : offset + binary_size])
            offset += binary_size
        else:
            named[t.name] = _json_tensor(t, field, size, f"inputs[{i}].data", bools)
    if offset != len(binary):
        raise InvalidInput(f"{len(binary) - offset} bytes of binary data belong to no input", field="body")
    outputs = None if req.outputs is None else [o.name for o in req.outputs]
    datatypes = {t.name: t.datatype for t in req.inputs}
    return OipRequest(Payload("named", named, datatypes), req.id, outputs, _binary_outputs(req))


_FLOATS = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}


def _float_request(req: InferenceRequest) -> OipRequest | None:
    """A body of JSON float tensors only, each tensor's ``data`` read from its bytes straight into
    its array (`mlbox.serving.jsonfloats`); None for anything else, which the general decoding
    reads (and words, when it is wrong) as before.

    Why: this is the body nearly every client sends, and reading its numbers into Python floats
    and then into an array was most of its decoding (100 rows x 20 floats: 141 -> ~60 us).
    """
    floats = json_floats()
    if floats is None:
        return None
    named: dict[str, np.ndarray] = {}
    for t in req.inputs:
        dtype = _FLOATS.get(t.datatype)
        if dtype is None or t.name in named or t.parameters or any(d < 0 for d in t.shape):
            return None
        arr = floats(t.data, math.prod(t.shape))
        if arr is None:
            return None
        arr = arr.reshape(t.shape)
        named[t.name] = arr if dtype is np.float64 else arr.astype(dtype)
    if not named:
        return None
    outputs = None if req.outputs is None else [o.name for o in req.outputs]
    datatypes = {t.name: t.datatype for t in req.inputs}
    return OipRequest(Payload("named", named, datatypes, bools=False), req.id, outputs, _binary_outputs(req))


def _spliced_request(body: bytes) -> OipRequest | None:
    """A body of one JSON float tensor whose numbers are read before the rest is decoded
    (`mlbox.serving.jsonfloats.spliced`); None for anything else, which `decode_oip` reads (and
    words, when it is wrong) as before.

    Why: the decoder skipping 2,000 numbers to find the keys around them cost as much as reading
    them (100 rows x 20 floats: ~55 us of ~145); here the numbers are read once and the decoder
    reads the ~100 bytes left. The depth check needs only those bytes too: the numbers were read as
    a flat array, and anything else there (a nested list) is declined.
    """
    if json_floats() is None or len(body) < _SPLICE_MIN_BYTES or b'"FP' not in body:
        return None
    from mlbox.serving.jsonfloats import spliced

    cut = spliced(body)
    if cut is None:
        return None
    header, values = cut
    try:
        check_json_depth(header)
        req = _decoder.decode(header)
    except (InvalidInput, msgspec.DecodeError):  # the general way words it
        return None
    if len(req.inputs) != 1:
        return None
    t = req.inputs[0]
    dtype = _FLOATS.get(t.datatype)
    if (
        dtype is None
        or bytes(t.data) != b"[]"  # the one "data" read was this tensor's
        or t.parameters
        or any(d < 0 for d in t.shape)
        or math.prod(t.shape) != values.size
    ):
        return None
    arr = values.reshape(t.shape)
    named = {t.name: arr if dtype is np.float64 else arr.astype(dtype)}
    outputs = None if req.outputs is None else [o.name for o in req.outputs]
    return OipRequest(
        Payload("named", named, {t.name: t.datatype}, bools=False), req.id, outputs, _binary_outputs(req)
    )


_SPLICE_MIN_BYTES = 512
"""Bodies shorter than this (a few rows) are decoded in one pass: splicing saves nothing there."""

_JSON_FLOATS: list[Any] = []  # [mlbox.serving.jsonfloats.floats] once imported, [None] without numba


def json_floats() -> Any:
    """`mlbox.serving.jsonfloats.floats`, imported (numba, its compiled reader) on the first call;
    None where numba cannot be imported (msgspec reads the numbers). A deployment calls this while
    it warms up, so no request pays the import."""
    if not _JSON_FLOATS:
        try:
            from mlbox.serving.jsonfloats import floats
        except ImportError:  # pragma: no cover - numba is a declared dependency
            _JSON_FLOATS.append(None)
        else:
            _JSON_FLOATS.append(floats)
    return _JSON_FLOATS[0]


def _binary_outputs(req: InferenceRequest) -> frozenset[str]:
    everything = (req.parameters or {}).get("binary_data_output") is True
    chosen = {
        o.name for o in req.outputs or () if (o.parameters or {}).get("binary_data", everything) is True
    }
    if everything and not req.outputs:
        return frozenset({"*"})
    return frozenset(chosen)


def _raw_bytes(arr: np.ndarray) -> tuple[str, bytes | memoryview]:
    """An output's OIP datatype and its bytes as the binary extension sends them (little-endian,
    row-major; BYTES as 4-byte lengths each followed by the UTF-8 string)."""
    datatype = OIP_BY_DTYPE.get(arr.dtype)
    if datatype is not None:
        native = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        return datatype, native.data.cast("B")
    datatype, values = jsonable(arr)
    if datatype != "BYTES":
        return _raw_bytes(np.asarray(_flat(values), dtype=OIP_TO_NUMPY[datatype]).reshape(arr.shape))
    parts: list[bytes] = []
    for v in _flat(values) if isinstance(values, list) else [values]:
        raw = ("" if v is None else str(v)).encode("utf-8", errors="surrogateescape")
        parts += [len(raw).to_bytes(4, "little"), raw]
    return "BYTES", b"".join(parts)


def encode_oip_binary(
    model_name: str,
    model_version: str,
    request_id: str,
    outputs: dict[str, np.ndarray],
    binary: frozenset[str],
) -> tuple[bytes, int]:
    """The OIP answer with the outputs in ``binary`` (``"*"``: all) as raw bytes after the JSON
    header, and the header's length (the ``Inference-Header-Content-Length`` to send).

    Numeric outputs go from the model's array into the body with one copy (the join).
    """
    tensors = []
    chunks: list[bytes | memoryview] = []
    for name, arr in outputs.items():
        if "*" in binary or name in binary:
            datatype, raw = _raw_bytes(arr)
            tensors.append(
                {
                    "name": name,
                    "shape": list(arr.shape),
                    "datatype": datatype,
                    "parameters": {"binary_data_size": len(raw) if isinstance(raw, bytes) else raw.nbytes},
                }
            )
            chunks.append(raw)
        else:
            datatype, data = jsonable(arr)
            tensors.append(
                {"name": name, "shape": list(arr.shape), "datatype": datatype, "data": _flat(data)}
            )
    header = _encoder.encode(
        {"model_name": model_name, "model_version": model_version, "id": request_id, "outputs": tensors}
    )
    return b"".join([header, *chunks]), len(header)


def encode_oip(model_name: str, model_version: str, request_id: str, outputs: dict[str, np.ndarray]) -> bytes:
    tensors = []
    for name, arr in outputs.items():
        datatype, data = jsonable(arr)
        tensors.append({"name": name, "shape": list(arr.shape), "datatype": datatype, "data": _flat(data)})
    return _encoder.encode(
        {"model_name": model_name, "model_version": model_version, "id": request_id, "outputs": tensors}
    )


def _flat(data: Any) -> Any:
    if isinstance(data, list) and data and isinstance(data[0], list):
        out: list[Any] = []
        stack = [data]
        while stack:  # row-major flattening without recursion limits
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            else:
                out.append(item)
        return out
    return data


def select_outputs(
    outputs: dict[str, np.ndarray], wanted: list[str] | None, legacy: dict[str, str] | None = None
) -> dict[str, np.ndarray]:
    """The outputs a request asked for, under the names it asked for.

    ``legacy`` maps output names served by older releases to today's
    (``predict`` -> ``output_0``): asked for by an old name, an output answers under it.
    """
    if not wanted:
        return outputs
    chosen: dict[str, np.ndarray] = {}
    for i, name in enumerate(wanted):
        actual = name if name in outputs or legacy is None else legacy.get(name, name)
        if actual not in outputs:
            raise SchemaMismatch(
                f"outputs[{i}].name: this model has no output {name!r}; it has {list(outputs)}",
                field=f"outputs[{i}].name",
            )
        chosen[name] = outputs[actual]
    return chosen


# -- MLflow scoring bodies -------------------------------------------------------------

MLFLOW_FORMATS = ("instances", "inputs", "dataframe_split", "dataframe_records")


def _records(records: Any, field: str) -> Payload:
    if not isinstance(records, list):
        raise InvalidInput(f"{field}: expected a non-empty list of records", field=field)
    if not records:
        raise InvalidContent(f"{field}: no records to score", field=field)
    names = list(records[0]) if isinstance(records[0], dict) else []
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InvalidInput(f"{field}[{i}]: expected an object", field=f"{field}[{i}]")
        if len(rec) != len(names) or any(n not in rec for n in names):
            raise InvalidContent(
                f"{field}[{i}]: has fields {sorted(rec)}, the first record has {sorted(names)}",
                field=f"{field}[{i}]",
            )
        for n in names:
            columns[n].append(rec[n])
    return Payload("columns", columns)


def _split(doc: Any, field: str) -> Payload:
    if not isinstance(doc, dict) or "data" not in doc:
        raise InvalidInput(f"{field}: expected an object with 'data' (and 'columns')", field=field)
    data = doc["data"]
    if not isinstance(data, list):
        raise InvalidInput(f"{field}.data: expected a list of rows", field=f"{field}.data")
    columns = doc.get("columns")
    if columns is None:
        return Payload("rows", data)
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidInput(f"{field}.columns: expected a list of names", field=f"{field}.columns")
    for i, row in enumerate(data):
        if not isinstance(row, list):
            raise InvalidInput(f"{field}.data[{i}]: expected a row (a list)", field=f"{field}.data[{i}]")
        if len(row) != len(columns):
            raise InvalidContent(
                f"{field}.data[{i}]: expected a row of {len(columns)} values", field=f"{field}.data[{i}]"
            )
    return Payload("columns", {c: [row[j] for row in data] for j, c in enumerate(columns)})


def decode_mlflow(body: bytes) -> Payload:
    """``instances``, ``inputs``, ``dataframe_split`` or ``dataframe_records`` (exactly one)."""
    quick = _spliced_rows(body)
    if quick is not None:
        return quick
    payload = _mlflow_payload(decode_json_body(body))
    payload.bools = may_hold_bools(body)
    return payload


def _spliced_rows(body: bytes) -> Payload | None:
    """``{"instances": [[...], ...]}`` (or ``"inputs"``) of float rows, the rows read straight into
    a 2-D array before the rest is decoded (`mlbox.serving.jsonfloats.spliced_rows`); None for
    anything else, which the general way reads as before.

    Why: the general way makes a Python float of every number and then ``np.array`` walks the
    nested lists (100 rows x 20: most of the MLflow route's CPU); the array it gives is the same.
    """
    if json_floats() is None or len(body) < _SPLICE_MIN_BYTES:
        return None
    from mlbox.serving.jsonfloats import spliced_rows

    for name in ("instances", "inputs"):
        cut = spliced_rows(body, f'"{name}"'.encode())
        if cut is not None:
            break
    else:
        return None
    header, rows = cut
    try:
        check_json_depth(header)
        doc = _any_decoder.decode(header)
    except (InvalidInput, msgspec.DecodeError):
        return None
    if not isinstance(doc, dict) or doc.get(name) != [] or any(k not in (name, "params") for k in doc):
        return None  # the key read was not the body's, or beside another format: the general way words it
    return Payload("rows", rows, bools=False)


def _mlflow_payload(doc: Any) -> Payload:
    if not isinstance(doc, dict):
        raise InvalidInput(f"expected a JSON object with one of {list(MLFLOW_FORMATS)}", field="body")
    given = [k for k in MLFLOW_FORMATS if k in doc]
    if len(given) != 1:
        raise InvalidInput(
            f"give exactly one of {list(MLFLOW_FORMATS)}, got {given or sorted(doc)}", field="body"
        )
    key = given[0]
    unknown = [k for k in doc if k not in (key, "params")]
    if unknown:
        raise InvalidInput(f"{unknown[0]}: unexpected field beside {key!r}", field=unknown[0])
    value = doc[key]
    if key == "dataframe_split":
        return _split(value, key)
    if key == "dataframe_records":
        return _records(value, key)
    if isinstance(value, dict):  # named tensors / columns: {"a": [...], "b": [...]}
        if not value:
            raise InvalidContent(f"{key}: no inputs", field=key)
        return Payload("named", value)
    if not isinstance(value, list):
        raise InvalidInput(f"{key}: expected a non-empty list or an object of named inputs", field=key)
    if not value:
        raise InvalidContent(f"{key}: no rows to score", field=key)
    if isinstance(value[0], dict):
        return _records(value, key)
    return Payload("rows", value)


def decode_csv(body: bytes) -> Payload:
    """CSV with a header row; column types inferred (numbers, strings; empty cells null)."""
    import polars as pl

    if not body.strip():
        raise InvalidInput("the CSV body is empty", field="body")
    try:
        frame = pl.read_csv(io.BytesIO(body), infer_schema_length=10_000)
    except Exception as exc:  # polars raises several error types for unreadable CSV
        raise InvalidInput(f"unreadable CSV: {str(exc).splitlines()[0]}", field="body") from None
    if frame.height == 0:
        raise InvalidContent("the CSV has a header but no rows", field="body")
    return Payload("columns", {name: frame[name].to_numpy() for name in frame.columns})


def encode_predictions(outputs: dict[str, np.ndarray]) -> bytes:
    """``{"predictions": [...]}`` for one output, ``{"predictions": {name: [...]}}`` for several."""
    if len(outputs) == 1:
        (arr,) = outputs.values()
        return _encoder.encode({"predictions": jsonable(arr)[1]})
    return _encoder.encode({"predictions": {name: jsonable(arr)[1] for name, arr in outputs.items()}})
