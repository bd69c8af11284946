"""Files and folders of the home are private to their owner: folders 0700, files 0600.

The home folder itself is 0700, but that alone protects nothing once the home is copied
(``cp -r`` keeps each file's own mode) or its mode is loosened: the database, logs,
artifacts and tables would be readable by everyone. So every writer of the home creates
what it writes private from the first byte, instead of a ``chmod`` after the fact (a
window in which it is readable) or a process-wide umask (which would also change the files
a user's job or notebook writes outside the home).

Folders are created private; folders that already exist are left as they are (one the
user made, or loosened on purpose, is theirs).
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
READ_ONLY_MODE = 0o400
"""Content-addressed objects and verified cache copies: never edited in place."""


def make_dirs(path: Path) -> Path:
    """``mkdir -p`` where every folder it creates is 0700 (``Path.mkdir(parents=True)``
    gives the parents the umask's mode, not the one asked for)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it meanwhile
            if not folder.is_dir():
                raise
    return path


def create(path: Path, *, exclusive: bool = True, append: bool = False) -> int:
    """A file descriptor for writing ``path``, created 0600 if it is new (``exclusive``:
    it must be new). The caller closes it (``os.fdopen(fd, "wb")``)."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    if exclusive:
        flags |= os.O_EXCL
    flags |= os.O_APPEND if append else (0 if exclusive else os.O_TRUNC)
    return os.open(path, flags, FILE_MODE)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (replacing it), the file 0600 if it is new."""
    with os.fdopen(create(path, exclusive=False), "wb") as f:
        f.write(data)
