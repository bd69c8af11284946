"""Byte counts for people, the same in the CLI and the TUI (as `mlbox.timefmt` is for times)."""

from __future__ import annotations


def size(n: int) -> str:
    """A byte count in binary units: ``37 B``, ``1.5 MiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
