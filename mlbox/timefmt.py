"""How times and durations read on a terminal, for the CLI and the TUI alike.

Two spellings of a timestamp, both local time: `when` to the second (CLI
listings, where a line has room and scripts compare times) and `when_minute`
(TUI tables, where a column is narrow). Durations fit a narrow column:
`duration` (``850ms``, ``3m07s``, ``2h05m``) and `age`, which keeps a tenth
of a second under a minute (how old an online feature value is). Pure
functions over values: no clock is read here.
"""

from __future__ import annotations

import datetime as dt
import math

SECOND_FORMAT = "%Y-%m-%d %H:%M:%S"
MINUTE_FORMAT = "%Y-%m-%d %H:%M"


def when(ts: float | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS`` local time; ``-`` when unknown."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime(SECOND_FORMAT)


def when_minute(ts: float | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM`` local time; ``-`` when unknown."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime(MINUTE_FORMAT)


def duration(seconds: float | None) -> str:
    """A duration that fits a narrow column: ``850ms``, ``42s``, ``3m07s``, ``2h05m``, ``3d04h``."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def age(seconds: float) -> str:
    """How old a value is: ``4.2s`` under a minute, then as `duration` (``3m07s``, ``2h05m``)."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    return duration(seconds)
