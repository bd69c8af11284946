"""Data quality of a window against its reference: missing values, NaN/inf, values out of the
reference's range, new categories, schema changes. Pure: profiles in, findings out."""

from __future__ import annotations

import msgspec

from mlbox.monitoring.profile import Profile

MISSING_GROWTH = 0.05
"""A column's missing share may grow this much over the reference's before it is a finding."""
OUT_OF_RANGE = 0.01
"""Share of a numeric column's values outside the reference's [min, max] that is a finding."""


class ColumnQuality(msgspec.Struct, frozen=True):
    column: str
    missing_rate: float
    reference_missing_rate: float
    infinite: int
    out_of_range_rate: float
    new_categories: list[str]
    problems: list[str]


class Quality(msgspec.Struct, frozen=True):
    rows: int
    columns: list[ColumnQuality]
    missing_columns: list[str]
    new_columns: list[str]
    type_changes: list[str]

    @property
    def problems(self) -> list[str]:
        out = [f"column {c!r} is missing" for c in self.missing_columns]
        out += [f"new column {c!r}" for c in self.new_columns]
        out += self.type_changes
        for c in self.columns:
            out += [f"{c.column}: {p}" for p in c.problems]
        return out


def quality(reference: Profile, window: Profile, window_columns: list[str] | None = None) -> Quality:
    """Findings per column; ``window_columns`` are all the window's columns (for new ones)."""
    missing_columns = [c for c in reference.columns if c not in window.columns]
    new_columns = [c for c in (window_columns or []) if c not in reference.columns]
    type_changes: list[str] = []
    rows: list[ColumnQuality] = []
    for name, ref in reference.columns.items():
        cur = window.columns.get(name)
        if cur is None:
            continue
        problems: list[str] = []
        if ref.kind == "numeric" and cur.dtype != ref.dtype and not _both_numbers(ref.dtype, cur.dtype):
            type_changes.append(f"{name}: type {ref.dtype} became {cur.dtype}")
        n = cur.rows or 1
        missing_rate = cur.missing / n
        ref_missing = ref.missing / (ref.rows or 1)
        if missing_rate > ref_missing + MISSING_GROWTH:
            problems.append(f"{missing_rate:.1%} missing (reference {ref_missing:.1%})")
        if cur.infinite:
            problems.append(f"{cur.infinite} infinite values")
        out_of_range = (cur.below + cur.above) / (cur.count or 1)
        if ref.kind == "numeric" and out_of_range > OUT_OF_RANGE:
            problems.append(
                f"{out_of_range:.1%} outside the reference's range [{ref.minimum:g}, {ref.maximum:g}]"
            )
        new = (
            sorted(k for k in cur.categories if k not in ref.categories) if ref.kind == "categorical" else []
        )
        if new:
            shown = ", ".join(repr(k) for k in new[:5]) + (" …" if len(new) > 5 else "")
            problems.append(f"new categories {shown}")
        rows.append(ColumnQuality(name, missing_rate, ref_missing, cur.infinite, out_of_range, new, problems))
    return Quality(window.rows, rows, missing_columns, new_columns, type_changes)


def _both_numbers(a: str, b: str) -> bool:
    numbers = ("int", "uint", "float", "Int", "UInt", "Float")
    return a.startswith(numbers) and b.startswith(numbers)
