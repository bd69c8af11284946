"""JSON float tensors read from their bytes (`mlbox.serving.jsonfloats`) give exactly Python's floats.

The reader converts only what one IEEE operation rounds correctly and hands
everything else (and everything that is not strict JSON) to the general
decoding; these tests hold it to ``float(text)`` bit for bit and check that
what it declines is declined, not misread.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from mlbox.serving.codecs import decode_mlflow, decode_oip
from mlbox.serving.errors import InvalidContent
from mlbox.serving.jsonfloats import floats, spliced, spliced_rows
from mlbox.store.errors import InvalidInput


def _numbers(count: int, seed: int) -> list[str]:
    """Numbers as clients write them: repr of doubles and of float32s, fixed and exponent
    notation, integers, long mantissas, tiny and huge exponents, negative zero."""
    rng = np.random.default_rng(seed)
    out = ["0", "-0", "-0.0", "0.0e5", "1e22", "1e-22", "9007199254740992", "9007199254740993"]
    for _ in range(count):
        kind = int(rng.integers(0, 6))
        if kind == 0:
            out.append(repr(float(rng.normal() * 10.0 ** int(rng.integers(-30, 30)))))
        elif kind == 1:
            out.append(f"{rng.normal():.{int(rng.integers(0, 18))}f}")
        elif kind == 2:
            out.append(f"{rng.normal():.{int(rng.integers(0, 18))}E}")
        elif kind == 3:
            out.append(str(int(rng.integers(-(10**18), 10**18))))
        elif kind == 4:
            out.append(f"{rng.integers(0, 10**9)}.{rng.integers(0, 10**9):09d}e{rng.integers(-25, 25)}")
        else:
            out.append(repr(float(np.float32(rng.normal()))))
    return out


def _same(got: float, text: str) -> bool:
    expected = float(text)
    return got == expected and math.copysign(1.0, got) == math.copysign(1.0, expected)


def test_every_number_read_is_pythons_float_bit_for_bit() -> None:
    read = declined = 0
    for text in _numbers(20_000, seed=0):
        got = floats(f"[{text}]".encode(), 1)
        if got is None:
            declined += 1  # past the exact fast path: the general way reads it
            continue
        assert _same(float(got[0]), text), text
        read += 1
    assert read > 5_000 and declined > 1_000  # both branches taken
    texts = [f"{v:.6f}" for v in np.random.default_rng(1).normal(size=2_000)]  # the usual body
    got = floats(("[" + ", ".join(texts) + "]").encode(), len(texts))
    assert got is not None
    assert all(_same(float(g), t) for g, t in zip(got, texts, strict=True))


@pytest.mark.parametrize(
    "body",
    [b"[1,]", b"[+1]", b"[01]", b"[1.]", b"[.5]", b"[NaN]", b"[Infinity]", b"[true]", b"[null]",
     b"[[1]]", b'["1"]', b"[1 2]", b"[1e]", b"[-]", b"[1]x", b"[", b"", b"{}", b"[1,2]",
     b"[12345678901234567890]", b"[1e23]"],
)  # fmt: skip
def test_what_is_not_a_strict_fast_array_of_one_number_is_declined(body: bytes) -> None:
    assert floats(body, 1) is None


def test_decoded_float_tensors_equal_the_general_decoding() -> None:
    """FP64 and FP32 tensors, a tensor the fast path declines beside one it reads, and whitespace:
    the same arrays (values, dtype, shape) as ``json.loads`` and ``np.array`` give."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(100, 20)).round(7)
    body = {
        "inputs": [
            {"name": "a", "shape": [100, 20], "datatype": "FP64", "data": x.ravel().tolist()},
            {"name": "b", "shape": [2, 2], "datatype": "FP32", "data": [0.1, -0.0, 3e-7, 1.5]},
        ]
    }
    for text in (json.dumps(body), json.dumps(body, indent=2)):
        got = decode_oip(text.encode()).payload.value
        assert got["a"].dtype == np.float64 and np.array_equal(got["a"], x)
        assert got["b"].dtype == np.float32 and np.array_equal(
            got["b"], np.array([[0.1, -0.0], [3e-7, 1.5]], dtype=np.float32)
        )
    body["inputs"][1]["data"] = [0.12345678901234567890123, 1.0, 2.0, 3.0]  # declined: msgspec reads it
    got = decode_oip(json.dumps(body).encode()).payload.value
    assert np.array_equal(got["a"], x)
    assert got["b"][0, 0] == np.float32(0.12345678901234567890123)


def _one_tensor(x: np.ndarray, datatype: str = "FP64", **extra: object) -> dict[str, object]:
    return {
        "inputs": [
            {"name": "x", "shape": list(x.shape), "datatype": datatype, "data": x.ravel().tolist(), **extra}
        ]
    }


def test_one_float_tensor_read_before_the_rest_equals_the_general_decoding() -> None:
    """The usual batched body (one FP tensor, its numbers read before the keys around them:
    `spliced`) decodes to the array the general decoding gives, whatever the key order, spacing,
    datatype or id; the numbers' body is really cut out (the header the decoder sees is small)."""
    x = np.random.default_rng(3).normal(size=(100, 20)).round(6)
    plain = _one_tensor(x)
    raw = json.dumps(plain).encode()
    cut = spliced(raw)
    assert cut is not None and len(cut[0]) < 120 and np.array_equal(cut[1], x.ravel())
    bodies = [
        raw,
        json.dumps(plain, indent=2).encode(),
        json.dumps(
            {
                "id": "r-1",
                "inputs": [{"data": x.ravel().tolist(), "datatype": "FP64", "shape": [100, 20], "name": "x"}],
            }
        ).encode(),
        json.dumps({**_one_tensor(x), "outputs": [{"name": "output_1"}]}).encode(),
    ]
    for body in bodies:
        got = decode_oip(body)
        assert got.payload.value["x"].dtype == np.float64 and np.array_equal(got.payload.value["x"], x), body[
            :80
        ]
    as32 = decode_oip(json.dumps(_one_tensor(x, "FP32")).encode()).payload.value["x"]
    assert as32.dtype == np.float32 and np.array_equal(as32, x.astype(np.float32))
    assert decode_oip(bodies[2]).id == "r-1" and decode_oip(bodies[3]).outputs == ["output_1"]


@pytest.mark.parametrize(
    "change",
    ["name data", "int", "two tensors", "nested", "inexact", "parameters", "count", "binary", "bool"],
)
def test_bodies_the_early_read_declines_decode_as_before(change: str) -> None:
    """What the early read must not take (a second "data", a tensor it cannot read, a count that
    does not match) goes the general way: the same values, or the same worded error."""
    x = np.random.default_rng(4).normal(size=(40, 20)).round(6)
    body: dict[str, object] = _one_tensor(x)
    tensor = body["inputs"][0]  # type: ignore[index]
    expect: object = x
    if change == "name data":
        tensor["name"] = "data"
    elif change == "int":
        tensor.update(datatype="INT64", data=[int(v * 100) for v in x.ravel()])
        expect = (x * 100).astype(np.int64)
    elif change == "two tensors":
        body["inputs"].append({"name": "y", "shape": [1], "datatype": "FP64", "data": [2.5]})  # type: ignore[attr-defined]
    elif change == "nested":
        tensor["data"] = x.tolist()
    elif change == "inexact":
        tensor["data"] = [0.12345678901234567890123, *x.ravel().tolist()[1:]]
        expect = x.copy()
        expect[0, 0] = 0.12345678901234567890123
    elif change == "parameters":
        tensor["parameters"] = {"content_type": "np"}
    elif change == "count":
        tensor["shape"] = [41, 20]
        expect = "has 800 values but shape [41, 20] needs 820"
    elif change == "binary":
        body["parameters"] = {"binary_data_output": True}
    elif change == "bool":
        tensor["data"] = [True, *x.ravel().tolist()[1:]]
        expect = "a bool is not a number"
    raw = json.dumps(body).encode()
    if isinstance(expect, str):
        with pytest.raises(InvalidContent, match=re.escape(expect)):
            decode_oip(raw)
        return
    got = decode_oip(raw)
    name = "data" if change == "name data" else "x"
    assert isinstance(expect, np.ndarray) and np.array_equal(got.payload.value[name], expect)
    if change == "two tensors":
        assert got.payload.value["y"].tolist() == [2.5]
    if change == "binary":
        assert got.binary == frozenset({"*"})


def test_the_early_read_takes_only_a_member_holding_a_flat_array() -> None:
    for body in (
        b'{"data" : 1}',
        b'{"x": "data"}',
        b'{"data": [1, [2]]}',
        b'{"data": [1,2',
        b'{"data":[1e400]}',
    ):
        assert spliced(body) is None, body
    cut = spliced(b'{"data" :\n [1.5, -2]  }')
    assert cut is not None and cut[0] == b'{"data" :\n []  }' and cut[1].tolist() == [1.5, -2.0]
    assert spliced(bytearray(b'{"data": [1]}')) is None  # type: ignore[arg-type]


def _general_mlflow(body: bytes) -> object:
    """What the general way (msgspec, then lists) decodes: the reference for the early read."""
    from mlbox.serving.codecs import _mlflow_payload

    return _mlflow_payload(json.loads(body)).value


def test_mlflow_rows_read_before_the_rest_equal_the_general_decoding() -> None:
    x = np.random.default_rng(5).normal(size=(100, 20)).round(6)
    for body in (
        json.dumps({"instances": x.tolist()}).encode(),
        json.dumps({"params": {"k": 1}, "inputs": x.tolist()}, indent=1).encode(),
        json.dumps({"instances": [[1e3, 2.5], [3.0, 4e-2]] * 100}).encode(),
    ):
        got = decode_mlflow(body)
        assert isinstance(got.value, np.ndarray) and got.kind == "rows" and not got.bools
        expected = np.array(_general_mlflow(body))
        assert got.value.dtype == expected.dtype and np.array_equal(got.value, expected)
        assert spliced_rows(body, b'"instances"' if b'"instances"' in body else b'"inputs"') is not None


@pytest.mark.parametrize(
    "change", ["ints", "an int", "ragged", "bool", "both keys", "key in params", "nested", "named"]
)
def test_mlflow_bodies_the_early_read_declines_decode_as_before(change: str) -> None:
    rows = np.random.default_rng(6).normal(size=(60, 10)).round(6).tolist()
    doc: dict[str, object] = {"instances": rows}
    if change == "ints":
        doc["instances"] = [[int(v * 100) for v in r] for r in rows]
    elif change == "an int":  # a column written as integers stays one for an integer column
        doc["instances"] = [[int(r[0] * 100), *r[1:]] for r in rows]
    elif change == "ragged":
        doc["instances"] = [*rows, [1.5]]
    elif change == "bool":
        doc["instances"] = [[True, *rows[0][1:]], *rows[1:]]
    elif change == "both keys":
        doc["inputs"] = rows
    elif change == "key in params":
        doc = {"params": {"instances": [[0.5]]}, "instances": rows}
    elif change == "nested":
        doc["instances"] = [[[v] for v in r] for r in rows]
    elif change == "named":
        doc = {"inputs": {"a": rows[0], "b": rows[1]}}
    body = json.dumps(doc).encode()
    if change not in ("both keys", "key in params"):  # those the reader takes and decode_mlflow declines
        assert spliced_rows(body, b'"instances"') is None
    try:
        expected = _general_mlflow(body)
    except InvalidInput as exc:
        with pytest.raises(InvalidInput, match=re.escape(str(exc))):
            decode_mlflow(body)
        return
    got = decode_mlflow(body)
    assert not isinstance(got.value, np.ndarray)  # the general way's lists, as before
    assert got.value == expected
