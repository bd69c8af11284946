"""The one error family of mlbox.

It lives in the bottom layer so the stores can raise it too; services raise
these, and each front end maps them once (HTTP status and JSON body, a one-line
CLI error with exit code 2, an error dialog in the TUI).
"""

from __future__ import annotations

import errno
import sqlite3


class MlboxError(Exception):
    """Base of every error mlbox raises on purpose; `http_status` guides the API."""

    http_status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str]:
        body = {"error": self.message, "type": type(self).__name__}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidInput(MlboxError):
    """The caller gave a value mlbox cannot accept; `field` names which one."""

    http_status = 400


class NotFound(MlboxError):
    """An id, name or path that does not exist."""

    http_status = 404


class Conflict(MlboxError):
    """The request contradicts what is stored (a param logged again with another value)."""

    http_status = 409


class IntegrityError(MlboxError):
    """Stored bytes no longer match their sha256: the artifact was tampered with or rotted."""

    http_status = 500


class UnusableStore(MlboxError):
    """The home or a database in it cannot be used as it is: a file where the home folder should
    be, a file that is not an SQLite database, or one written by a newer mlbox. The message names
    the path and what to do; nothing was changed."""

    http_status = 500


class StorageFull(MlboxError):
    """The disk (or quota) holding the home is full. Every write is atomic, so nothing was
    half written: the write can be sent again once space is freed."""

    http_status = 507


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def storage_full(exc: BaseException, where: object = "the home") -> StorageFull | None:
    """The `StorageFull` that ``exc`` means (SQLite's "database or disk is full", or an OS
    "no space"/"quota exceeded"), or None for any other error."""
    if isinstance(exc, StorageFull):
        return exc
    full = (isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)) or (
        isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS
    )
    if not full:
        return None
    return StorageFull(
        f"no space left for {where}: the disk is full ({exc}); nothing was half written,"
        " free some space and try again"
    )
