"""Reading a user's table (Parquet or CSV) as a pandas frame, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlbox.store.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import pandas as pd

SUFFIXES = (".parquet", ".pq", ".csv")


def read_frame(path: str | Path, *, field: str = "path") -> pd.DataFrame:
    """The rows of a ``.parquet`` or ``.csv`` file; `NotFound` / `InvalidInput` naming ``field``."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no file {str(p)!r}", field=field)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInput(f"{str(p)!r} is not a .parquet or .csv file", field=field)
    try:
        if suffix == ".csv":
            return pd.read_csv(p)
        return pd.read_parquet(p)
    except Exception as exc:  # a truncated or foreign file: say which, in one line
        raise InvalidInput(f"cannot read {str(p)!r}: {exc}", field=field) from None
