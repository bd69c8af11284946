"""Pickle for the flavors that need it, refusing what another process could not load.

Pickle stores classes and functions by reference. One defined in
``__main__`` (a script, a notebook cell) would pickle fine and then fail to
load in the appliance, far from the mistake; the pickler here refuses it at
registration instead, naming the class. Loading happens only from files whose
sha256 the registry has just verified: that, not the format, is the safety line.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from mlbox.store.errors import InvalidInput

PROTOCOL = 5


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        by_reference = isinstance(obj, type) or (callable(obj) and hasattr(obj, "__qualname__"))
        owner = obj if by_reference else type(obj)
        if getattr(owner, "__module__", None) == "__main__":
            name = getattr(owner, "__qualname__", repr(owner))
            raise InvalidInput(
                f"{name} is defined in __main__ (a script or notebook), so no other process can load"
                " it; move it into an importable module",
                field="model",
            )
        return NotImplemented


def dump(obj: Any, path: Path) -> None:
    buffer = io.BytesIO()
    try:
        _Pickler(buffer, protocol=PROTOCOL).dump(obj)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"the model cannot be pickled: {exc}", field="model") from None
    path.write_bytes(buffer.getvalue())


def load(path: Path) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)
