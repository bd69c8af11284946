"""Metric series in columnar chunks: the encoding and the math over it. Pure.

A writer commit stores each key's new points as one row of three packed
arrays (steps int64, timestamps float64, values float64, little-endian). A
million points then cost a few hundred row inserts instead of a million,
NaN and ±inf survive exactly, and a 100,000-step curve is read back as a few
blobs rather than 100,000 rows — the two places MLflow's row-per-point store
is slow.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass, field

_SWAP = sys.byteorder != "little"


@dataclass
class Chunk:
    """Points of one key, in the order they were logged."""

    steps: array = field(default_factory=lambda: array("q"))
    ts: array = field(default_factory=lambda: array("d"))
    values: array = field(default_factory=lambda: array("d"))

    def append(self, step: int, ts: float, value: float) -> None:
        self.steps.append(step)
        self.ts.append(ts)
        self.values.append(value)

    def extend(self, other: Chunk) -> None:
        self.steps.extend(other.steps)
        self.ts.extend(other.ts)
        self.values.extend(other.values)

    def __len__(self) -> int:
        return len(self.steps)

    def latest(self) -> int:
        """Index of the point with the largest step (the last logged one on ties)."""
        top = max(self.steps)
        return len(self.steps) - 1 - self.steps[::-1].index(top)

    def encode(self) -> tuple[bytes, bytes, bytes]:
        return _pack(self.steps), _pack(self.ts), _pack(self.values)

    @classmethod
    def decode(cls, steps: bytes, ts: bytes, values: bytes) -> Chunk:
        return cls(_unpack("q", steps), _unpack("d", ts), _unpack("d", values))

    def sorted_by_step(self) -> Chunk:
        """Step order (stable: points logged at one step keep their order)."""
        s = self.steps
        if all(s[i] <= s[i + 1] for i in range(len(s) - 1)):
            return self
        order = sorted(range(len(s)), key=s.__getitem__)
        return Chunk(
            array("q", (s[i] for i in order)),
            array("d", (self.ts[i] for i in order)),
            array("d", (self.values[i] for i in order)),
        )

    def thin(self, max_points: int) -> Chunk:
        """At most ``max_points`` evenly spaced points, always keeping the last one."""
        n = len(self)
        if max_points <= 0 or n <= max_points:
            return self
        stride = n / max_points
        idx = [int(i * stride) for i in range(max_points - 1)] + [n - 1]
        return Chunk(
            array("q", (self.steps[i] for i in idx)),
            array("d", (self.ts[i] for i in idx)),
            array("d", (self.values[i] for i in idx)),
        )


def _pack(a: array) -> bytes:
    if _SWAP:
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def _unpack(typecode: str, data: bytes) -> array:
    a = array(typecode)
    a.frombytes(data)
    if _SWAP:
        a.byteswap()
    return a


def group(points: list[tuple[str, int, float, float]]) -> dict[str, Chunk]:
    """(key, step, ts, value) points to one chunk per key, order kept."""
    out: dict[str, Chunk] = {}
    for key, step, ts, value in points:
        chunk = out.get(key)
        if chunk is None:
            chunk = out[key] = Chunk()
        chunk.append(step, ts, value)
    return out
