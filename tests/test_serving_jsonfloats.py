"""JSON float tensors read from their bytes (`mlbox.serving.jsonfloats`) give exactly Python's floats.

The reader converts only what one IEEE operation rounds correctly and hands
everything else (and everything that is not strict JSON) to the general
decoding; these tests hold it to ``float(text)`` bit for bit and check that
what it declines is declined, not misread.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mlbox.serving.codecs import decode_oip
from mlbox.serving.jsonfloats import floats


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
