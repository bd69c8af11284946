"""What a headless run's executed notebook says about how it failed: the first cell that raised.

Pure functions over the notebook's JSON (as nbformat writes it), so `mlbox notebook run --wait`
and anything else that holds the executed notebook (a run artifact) can say which exception
ended the run without re-reading a log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SOURCE_CHARS = 60
"""How much of the failing cell's first line is quoted."""


@dataclass(frozen=True)
class CellError:
    ename: str
    evalue: str
    source: str
    """The first line of the cell that raised (so the user finds it without cell numbers, which
    the injected parameters cell shifts)."""

    def line(self) -> str:
        where = f" (in the cell: {self.source})" if self.source else ""
        return f"{self.ename}: {self.evalue}{where}"


def _first_line(source: Any) -> str:
    text = "".join(source) if isinstance(source, list) else str(source or "")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return first if len(first) <= SOURCE_CHARS else first[: SOURCE_CHARS - 1] + "…"


def first_error(nb: Mapping[str, Any]) -> CellError | None:
    """The first error output of the executed notebook ``nb``; None when no cell raised."""
    for cell in nb.get("cells") or ():
        for output in cell.get("outputs") or ():
            if output.get("output_type") == "error":
                return CellError(
                    str(output.get("ename") or "Error"),
                    str(output.get("evalue") or ""),
                    _first_line(cell.get("source")),
                )
    return None
