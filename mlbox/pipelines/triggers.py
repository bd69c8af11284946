"""What starts runs besides a person: cron ticks, files arriving in a folder, day partitions.

Pure functions over times and names (the service does the I/O), except the folder scan.
Cron expressions are the five classic fields (minute hour day-of-month month day-of-week),
read in UTC; when both day fields are restricted a day matching either fires (as cron does).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from mlbox.store.errors import InvalidInput

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
MAX_CATCHUP = 1000
"""At most this many missed ticks are run (``all``); the oldest beyond it are dropped."""
MAX_SCAN_DAYS = 366 * 5


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Sunday (7 is read as 0)."""
    any_day: bool
    any_weekday: bool

    def day_matches(self, d: dt.date) -> bool:
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return dow
        if self.any_weekday:
            return dom
        return dom or dow


def _field(text: str, name: str, lo: int, hi: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        rng, _, step_s = part.partition("/")
        try:
            step = int(step_s) if step_s else 1
            if rng == "*":
                a, b = lo, hi
            elif "-" in rng:
                a_s, b_s = rng.split("-", 1)
                a, b = int(a_s), int(b_s)
            else:
                a = int(rng)
                b = hi if step_s else a
        except ValueError:
            raise InvalidInput(
                f"cron {name} field {text!r} is not a number, range, list or step", field="cron"
            ) from None
        if step < 1 or not (lo <= a <= hi) or not (lo <= b <= hi) or a > b:
            raise InvalidInput(f"cron {name} field {text!r} is outside {lo}-{hi}", field="cron")
        values.update(range(a, b + 1, step))
    return frozenset(values)


def parse_cron(expr: str) -> Cron:
    """`InvalidInput` (field ``cron``) naming the bad field."""
    parts = expr.split()
    if len(parts) != 5:
        raise InvalidInput(
            f"cron expression {expr!r} must have 5 fields (minute hour day month weekday), it has {len(parts)}",
            field="cron",
        )
    sets = [_field(p, name, lo, hi) for p, (name, lo, hi) in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(0 if d == 7 else d for d in sets[4])
    return Cron(sets[0], sets[1], sets[2], sets[3], weekdays, parts[2] == "*", parts[4] == "*")


def ticks_between(expr: str, after: float, until: float) -> list[float]:
    """Every tick ``t`` with ``after < t <= until`` (UTC epoch seconds, whole minutes)."""
    cron = parse_cron(expr)
    start = dt.datetime.fromtimestamp(after, dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(
        minutes=1
    )
    end = dt.datetime.fromtimestamp(until, dt.UTC)
    out: list[float] = []
    day = start.date()
    for _ in range(MAX_SCAN_DAYS):
        if day > end.date():
            break
        if cron.day_matches(day):
            for h in sorted(cron.hours):
                for m in sorted(cron.minutes):
                    t = dt.datetime(day.year, day.month, day.day, h, m, tzinfo=dt.UTC)
                    if start <= t <= end:
                        out.append(t.timestamp())
        day += dt.timedelta(days=1)
    return out


def due_ticks(expr: str, last: float, now: float, catchup: str) -> list[float]:
    """The ticks to run now, given the last one handled: ``all`` missed ticks (up to
    `MAX_CATCHUP`), the ``latest`` only, or with ``none`` only a tick of this very minute."""
    ticks = ticks_between(expr, last, now)
    if not ticks:
        return []
    if catchup == "all":
        return ticks[-MAX_CATCHUP:]
    if catchup == "latest":
        return ticks[-1:]
    return [t for t in ticks[-1:] if now - t < 60]


def last_tick_before(expr: str, last: float, now: float) -> float | None:
    ticks = ticks_between(expr, last, now)
    return ticks[-1] if ticks else None


def tick_partition(tick: float) -> str:
    """A cron run's partition: the tick's UTC day."""
    return dt.datetime.fromtimestamp(tick, dt.UTC).date().isoformat()


def day_partitions(start: str, end: str) -> list[str]:
    """``YYYY-MM-DD`` days from ``start`` to ``end`` inclusive (at most ten years)."""
    try:
        a, b = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    except ValueError as exc:
        raise InvalidInput(f"partitions are days (YYYY-MM-DD): {exc}", field="start") from None
    if b < a:
        raise InvalidInput(f"the range ends ({end}) before it starts ({start})", field="end")
    if (b - a).days > 3660:
        raise InvalidInput("a backfill covers at most ten years of days", field="end")
    return [(a + dt.timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def check_folder(path: str) -> Path:
    p = Path(path)
    if not p.is_absolute():
        raise InvalidInput(f"the watched folder {path!r} must be an absolute path", field="folder")
    if not p.is_dir():
        raise InvalidInput(f"the watched folder {path} does not exist", field="folder")
    return p


def scan_folder(path: str) -> list[tuple[str, int, float]]:
    """``(name, size, mtime)`` of the plain files in the folder (hidden and partial ones skipped)."""
    folder = check_folder(path)
    out: list[tuple[str, int, float]] = []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith(".") or entry.name.endswith((".part", ".tmp")):
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
            out.append((entry.name, st.st_size, st.st_mtime))
    return sorted(out)
