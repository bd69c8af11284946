"""Settings of the feature store, read from ``MLBOX_FEATURES_*``.

Checked when settings load, so a bad value is one clear error at start-up
rather than a DuckDB parser error in the middle of the first training set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from mlbox.store.errors import InvalidInput

DEFAULT_MEMORY_LIMIT = "2GB"
MIN_MEMORY_BYTES = 1_000_000  # below this DuckDB cannot even start a query

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
# DuckDB's units: KB, MB, GB, TB are powers of 1000, KiB … TiB of 1024; words and single letters too
_UNITS = {
    **dict.fromkeys(("b", "byte", "bytes"), 1),
    **dict.fromkeys(("k", "kb", "kilobyte", "kilobytes"), 1000),
    **dict.fromkeys(("m", "mb", "megabyte", "megabytes"), 1000**2),
    **dict.fromkeys(("g", "gb", "gigabyte", "gigabytes"), 1000**3),
    **dict.fromkeys(("t", "tb", "terabyte", "terabytes"), 1000**4),
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def memory_bytes(value: str, field: str = "memory_limit") -> int:
    """Bytes of a DuckDB memory limit (``2GB``, ``512MiB``, ``50%`` of RAM), read as DuckDB
    reads it (the offline join sizes its batches from it); InvalidInput if DuckDB would not."""
    percent = _PERCENT.match(value)
    if percent:
        share = float(percent.group(1))
        if not 0 < share <= 100:
            raise InvalidInput(f"{field}={value!r}: a percentage of memory must be in (0, 100]", field=field)
        return int(share / 100 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    size = _SIZE.match(value)
    unit = size.group(2).lower() if size else ""
    if size is None or unit not in _UNITS:
        raise InvalidInput(f"{field}={value!r} is not a size like 2GB, 512MB, 4GiB or 50%", field=field)
    return int(float(size.group(1)) * _UNITS[unit])


def check_memory_limit(value: str, field: str = "memory_limit") -> str:
    """``value`` if DuckDB reads it as a memory limit of at least 1 MB, else InvalidInput."""
    if memory_bytes(value, field) < MIN_MEMORY_BYTES:
        raise InvalidInput(f"{field}={value!r} is too small: give at least 1MB", field=field)
    return value.strip()


@dataclass(frozen=True)
class FeatureSettings:
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    """``MLBOX_FEATURES_MEMORY_LIMIT``: memory for offline joins and materialization
    (``2GB``, ``512MiB``, ``50%`` of RAM): it sizes the join's source batches and is
    DuckDB's limit where DuckDB reads (spilling to ``$MLBOX_HOME/features/tmp``), so a
    source larger than memory still joins."""
    threads: int | None = None
    """``MLBOX_FEATURES_THREADS``: DuckDB worker threads (default: one per core)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FeatureSettings:
        env = os.environ if environ is None else environ
        s = cls()
        name = "MLBOX_FEATURES_MEMORY_LIMIT"
        if env.get(name, "").strip():
            s = replace(s, memory_limit=check_memory_limit(env[name], name))
        name = "MLBOX_FEATURES_THREADS"
        if env.get(name, "").strip():
            try:
                threads = int(env[name])
            except ValueError:
                raise InvalidInput(f"{name}={env[name]!r} is not a whole number", field=name) from None
            if threads < 1:
                raise InvalidInput(f"{name} must be at least 1, got {env[name]!r}", field=name)
            s = replace(s, threads=threads)
        return s
