"""A JSON array of numbers read straight into a float64 array, as Python's ``float`` reads each.

Why: a 100-row request of 20 features carries 2,000 numbers; msgspec reads
them into 2,000 Python floats (~40 ns each) that ``np.fromiter`` then copies
into an array (~20 ns each), most of the server's CPU for such a request
after HTTP. Here one numba loop reads the array's bytes into the array.

Exactness: a number is converted only where one IEEE operation gives the
correctly rounded double (Clinger's fast path): at most 19 significant
digits (leading zeros of a fraction count) whose value is at most 2**53,
times or divided by an exact power of ten up to 10**22 (so ``1.234567``,
``-0.5``, ``3e-7``). Anything else (more
digits, a larger exponent), and anything that is not a strict JSON array of
JSON numbers (``true``, ``NaN``, ``+1``, ``01``, ``1.``, nested lists, a
string), answers -1 and the caller reads the body the general way, which
also words its errors. So the values are always those ``float(text)`` gives.

The entry points (`parse_into`, `read_member`) keep the GIL (``nogil=False``): they run on the
event loop for ~40 µs a 100-row body, and a thread that lets the GIL go for that long hands it
to the prediction log's writer or the inference thread, then waits up to the switch interval
(5 ms) to get it back. Measured with ``scripts/bench/serving_tail.py`` (100-row requests,
concurrency 16, two alternating rounds, load 5-7): event-loop beats later than 5 ms 94 and 148
with ``nogil=True``, 12 and 36 without; p99 28 and 127 ms against 19 and 24 ms.

This module imports numba: import it lazily (`parser`).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_POWERS = np.array([10.0**k for k in range(23)])  # each exactly representable as a double
_MAX_EXACT = np.uint64(1 << 53)  # a uint64: compared with the significand without a float conversion


_BYTES = numba.types.Array(numba.uint8, 1, "C", readonly=True)  # a view of the request body


@numba.njit(
    numba.types.UniTuple(numba.int64, 3)(_BYTES, numba.int64, numba.float64[::1]),
    nogil=True,
    cache=True,
    boundscheck=False,
)
def read_array(text: Any, i: int, out: Any) -> tuple[int, int, int]:  # pragma: no cover - machine code
    """Reads the JSON array that starts at ``text[i]`` (a ``[``) into ``out``: (the count read, the
    index just past its ``]``, how many numbers were written as integers: no fraction, no
    exponent), or a count of -1 where the general way must read it (not a flat array of numbers, a
    number past the exact fast path, more numbers than ``out`` holds)."""
    n = text.shape[0]
    if i >= n or text[i] != 91:  # [
        return -1, i, 0
    i += 1
    while i < n and (text[i] == 32 or text[i] == 9 or text[i] == 10 or text[i] == 13):
        i += 1
    count = 0
    plain = 0
    if i < n and text[i] == 93:  # ] : empty
        i += 1
    else:
        while True:
            if i >= n:
                return -1, i, 0
            negative = text[i] == 45  # -
            if negative:
                i += 1
                if i >= n:
                    return -1, i, 0
            c = text[i]
            if c < 48 or c > 57:
                return -1, i, 0
            significand = np.uint64(0)
            integer = True  # written as one, until a fraction or an exponent says otherwise
            exponent = 0
            first = i
            if c == 48:  # a leading 0 stands alone
                i += 1
                if i < n and 48 <= text[i] <= 57:
                    return -1, i, 0
                first = i  # the 0 is no digit of the significand
            else:
                while i < n and 48 <= text[i] <= 57:
                    significand = significand * np.uint64(10) + np.uint64(text[i] - 48)
                    i += 1
            digits = i - first
            if i < n and text[i] == 46:  # .
                integer = False
                i += 1
                if i >= n or text[i] < 48 or text[i] > 57:
                    return -1, i, 0
                first = i
                while i < n and 48 <= text[i] <= 57:
                    significand = significand * np.uint64(10) + np.uint64(text[i] - 48)
                    i += 1
                exponent = first - i
                digits += i - first
            if digits > 19:  # the significand may have wrapped: leave it to the general way
                return -1, i, 0
            if i < n and (text[i] == 101 or text[i] == 69):  # e E
                integer = False
                i += 1
                sign = 1
                if i < n and (text[i] == 43 or text[i] == 45):
                    sign = -1 if text[i] == 45 else 1
                    i += 1
                if i >= n or text[i] < 48 or text[i] > 57:
                    return -1, i, 0
                power = 0
                while i < n and 48 <= text[i] <= 57:
                    if power < 10_000:
                        power = power * 10 + (text[i] - 48)
                    i += 1
                exponent += sign * power
            if significand == 0:
                value = 0.0
            elif significand > _MAX_EXACT or exponent > 22 or exponent < -22:
                return -1, i, 0
            elif exponent >= 0:
                value = np.float64(significand) * _POWERS[exponent]
            else:
                value = np.float64(significand) / _POWERS[-exponent]
            if count >= out.shape[0]:
                return -1, i, 0
            out[count] = -value if negative else value
            count += 1
            if integer:
                plain += 1
            while i < n and (text[i] == 32 or text[i] == 9 or text[i] == 10 or text[i] == 13):
                i += 1
            if i >= n:
                return -1, i, 0
            if text[i] == 44:  # ,
                i += 1
                while i < n and (text[i] == 32 or text[i] == 9 or text[i] == 10 or text[i] == 13):
                    i += 1
                continue
            if text[i] == 93:  # ]
                i += 1
                break
            return -1, i, 0
    return count, i, plain


@numba.njit(numba.int64(_BYTES, numba.float64[::1]), nogil=False, cache=True, boundscheck=False)
def parse_into(text: Any, out: Any) -> int:  # pragma: no cover - machine code; tests compare with float()
    """Reads the JSON array ``text`` (nothing but whitespace around it) into ``out``; the count
    read, or -1 (see `read_array`)."""
    n = text.shape[0]
    i = 0
    while i < n and (text[i] == 32 or text[i] == 9 or text[i] == 10 or text[i] == 13):
        i += 1
    count, i, _ = read_array(text, i, out)
    if count < 0:
        return -1
    while i < n and (text[i] == 32 or text[i] == 9 or text[i] == 10 or text[i] == 13):
        i += 1
    return count if i == n else -1


@numba.njit(
    numba.types.UniTuple(numba.int64, 3)(_BYTES, numba.int64, numba.float64[::1]),
    nogil=False,
    cache=True,
    boundscheck=False,
)
def read_member(text: Any, i: int, out: Any) -> tuple[int, int, int]:  # pragma: no cover - machine code
    """Reads the value of an object member whose key ends just before ``text[i]`` (``: [...]``, any
    whitespace) into ``out``: (the count read, where its ``[`` is, the index just past its ``]``),
    the count -1 where the general way must read it."""
    n = text.shape[0]
    while i < n and (text[i] == 32 or text[i] == 9 or text[i] == 10 or text[i] == 13):
        i += 1
    if i >= n or text[i] != 58:  # :
        return -1, i, i
    i += 1
    while i < n and (text[i] == 32 or text[i] == 9 or text[i] == 10 or text[i] == 13):
        i += 1
    start = i
    count, i, _ = read_array(text, i, out)
    return count, start, i


@numba.njit(
    numba.types.UniTuple(numba.int64, 4)(_BYTES, numba.int64, numba.float64[::1]),
    nogil=False,
    cache=True,
    boundscheck=False,
)
def read_rows_member(text: Any, i: int, out: Any) -> tuple[int, int, int, int]:  # pragma: no cover
    """`read_member` for an array of rows (``: [[...], [...]]``), read row after row into ``out``:
    (rows, width, where its ``[`` is, the index just past its ``]``), rows -1 where the general way
    must read it (no rows, ragged or empty rows, a number written as an integer, anything
    `read_array` declines)."""
    n = text.shape[0]
    while i < n and (text[i] == 32 or text[i] == 9 or text[i] == 10 or text[i] == 13):
        i += 1
    if i >= n or text[i] != 58:  # :
        return -1, 0, i, i
    i += 1
    while i < n and (text[i] == 32 or text[i] == 9 or text[i] == 10 or text[i] == 13):
        i += 1
    start = i
    if i >= n or text[i] != 91:  # [
        return -1, 0, start, i
    i += 1
    rows = 0
    width = -1
    filled = 0
    while True:
        while i < n and (text[i] == 32 or text[i] == 9 or text[i] == 10 or text[i] == 13):
            i += 1
        count, i, integers = read_array(text, i, out[filled:])
        if count <= 0 or integers or (width != -1 and count != width):
            return -1, 0, start, i
        width = count
        filled += count
        rows += 1
        while i < n and (text[i] == 32 or text[i] == 9 or text[i] == 10 or text[i] == 13):
            i += 1
        if i >= n:
            return -1, 0, start, i
        if text[i] == 44:  # ,
            i += 1
            continue
        if text[i] == 93:  # ]
            i += 1
            return rows, width, start, i
        return -1, 0, start, i


def floats(raw: Any, size: int) -> np.ndarray | None:
    """The ``size`` numbers of the JSON array in ``raw`` (bytes-like) as float64, or None where the
    general way must read it (see the module's docstring)."""
    out = np.empty(size, dtype=np.float64)
    got = parse_into(np.frombuffer(raw, dtype=np.uint8), out)
    return out if got == size else None


DATA_KEY = b'"data"'


def spliced(body: bytes) -> tuple[bytes, np.ndarray] | None:
    """The body's one ``"data"`` array read into float64, and the body with ``[]`` in its place;
    None where the body does not hold exactly one ``"data"`` key followed by an array this reader
    takes (the caller then reads the body the general way).

    Why: a JSON scoring body is nearly all its numbers, and a JSON decoder skipping them to find
    the keys around them costs as much as reading them (msgspec: ~28 ns a number). Here the
    numbers are read once, straight into the array, and the decoder sees a body of ~100 bytes.
    The caller checks that the decoded tensor's ``data`` is the ``[]`` put here (so the one
    ``"data"`` found was its key) and that the count matches its shape.
    """
    if type(body) is not bytes:
        return None
    key = body.find(DATA_KEY)
    if key < 0:
        return None
    # a number takes at least two bytes (a digit and a comma or the closing bracket)
    out = np.empty((len(body) - key) // 2 + 1, dtype=np.float64)
    count, start, end = read_member(np.frombuffer(body, dtype=np.uint8), key + len(DATA_KEY), out)
    if count < 0 or body.find(DATA_KEY, end) >= 0:  # the array read holds no key: look past it only
        return None
    out.resize(count, refcheck=False)  # shrinks in place: no copy, nothing else refers to it yet
    return body[:start] + b"[]" + body[end:], out


def spliced_rows(body: bytes, key: bytes) -> tuple[bytes, np.ndarray] | None:
    """`spliced` for a body whose one ``key`` (``b'"instances"'``) holds rows of numbers: the rows
    as a 2-D float64 array and the body with ``[]`` in their place; None where the general way must
    read it, and wherever a number is written as an integer (``35``, not ``35.0``): the general
    way keeps such a column an integer one, which a model's integer column takes and a float
    column refuses, so here every number must be written as a float."""
    if type(body) is not bytes:
        return None
    at = body.find(key)
    if at < 0:
        return None
    out = np.empty((len(body) - at) // 2 + 1, dtype=np.float64)
    rows, width, start, end = read_rows_member(np.frombuffer(body, dtype=np.uint8), at + len(key), out)
    if rows < 0 or body.find(key, end) >= 0:
        return None
    out.resize(rows * width, refcheck=False)
    return body[:start] + b"[]" + body[end:], out.reshape(rows, width)
