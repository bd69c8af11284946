"""A saved view of the runs table per experiment: columns, pins, sort and filter.

Kept in ``$MLBOX_HOME/tui/views.json`` (0600, in a 0700 folder), written
whole to a temporary beside it and renamed, so a crash leaves the old file or
the new one, never half of one. A file that cannot be read (damaged, from a
newer version) reads as no saved views: a view is a convenience, never a
reason for the TUI not to start.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from mlbox.store import private

ALL = ""
"""The scope of the table over every experiment."""


class View(msgspec.Struct, frozen=True, kw_only=True):
    columns: list[str] | None = None
    """Keys of the columns shown, in table order; None: the default for the scope."""
    pinned: list[str] = []
    """Keys of the columns kept at the left while the table scrolls sideways."""
    sort_key: str | None = None
    sort_desc: bool = True
    filter: str = ""


class _File(msgspec.Struct, kw_only=True):
    version: int = 1
    views: dict[str, View] = {}


def path_in(home: Path) -> Path:
    return home / "tui" / "views.json"


def load(path: Path) -> dict[str, View]:
    """Every saved view by scope (experiment name, ``ALL`` for all); {} when there is none."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=_File).views
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return {}


def save(path: Path, scope: str, view: View) -> None:
    """Store ``view`` for ``scope``, keeping the other scopes' views; atomic, 0600."""
    views = load(path)
    views[scope] = view
    private.make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with os.fdopen(private.create(tmp, exclusive=False), "wb") as f:
            f.write(msgspec.json.format(msgspec.json.encode(_File(views=views))))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
