"""Content-addressed artifact store: bytes named by their sha256.

Invariants:

* An object is written to a temporary file in the same store, fsynced, then
  renamed into place (and the folder fsynced), so a crash never leaves a
  half-written object under a valid name.
* Objects are read through a sha256 name that is checked to be 64 hex
  digits; no caller-given path ever becomes a filesystem path, so nothing
  outside the store can be reached (no ``../``, no absolute path).
* An object that is a symlink is refused, and every read verifies the hash.
* Everything is private to the owner (`mlbox.store.private`): folders 0700, objects 0400.
* A temporary's name records its writer (`mlbox.store.tempfiles`), so the one a killed
  writer left is found and removed (`ArtifactStore.remove_orphans`, at appliance start).
* An object's mtime is when a writer last stored it: storing bytes already there touches the
  object (and writes it afresh if it vanished meanwhile). `mlbox.store.gc` relies on that to
  never remove an object a writer is about to record a reference to (`ArtifactStore.discard`).

Logical artifact paths (``model/weights.pt``) live in the database and map to
these names; `clean_relpath` is the one validator for them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from mlbox.store import private, tempfiles
from mlbox.store.errors import IntegrityError, InvalidInput, NotFound

CHUNK = 1 << 20
_SHA = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Blob:
    sha256: str
    size: int


def clean_relpath(path: str, *, field: str = "path") -> str:
    """Normalize a logical artifact path, refusing anything that could escape.

    Accepts ``a/b.txt`` style relative POSIX paths; refuses empty paths,
    absolute paths, ``..`` parts, backslashes, NUL and control characters.
    """
    if not isinstance(path, str) or not path.strip():
        raise InvalidInput("artifact path must be a non-empty string", field=field)
    if any(ord(c) < 32 for c in path) or "\\" in path:
        raise InvalidInput(f"artifact path {path!r} has control characters or '\\'", field=field)
    pure = PurePosixPath(path)
    if pure.is_absolute() or path.startswith("~"):
        raise InvalidInput(f"artifact path {path!r} must be relative", field=field)
    parts = [p for p in pure.parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise InvalidInput(f"artifact path {path!r} may not contain '..'", field=field)
    return "/".join(parts)


class ArtifactStore:
    """Objects under ``root/objects/ab/cdef…``; temporary files under ``root/tmp``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        private.make_dirs(self._objects)
        private.make_dirs(self._tmp)

    def _path(self, sha256: str) -> Path:
        if not isinstance(sha256, str) or not _SHA.fullmatch(sha256):
            raise InvalidInput(f"not a sha256 digest: {sha256!r}", field="sha256")
        return self._objects / sha256[:2] / sha256[2:]

    def put_stream(self, stream: BinaryIO) -> Blob:
        """Copy a stream into the store, hashing as it goes."""
        digest = hashlib.sha256()
        size = 0
        tmp = self._tmp / tempfiles.temp_name()
        try:
            with os.fdopen(private.create(tmp), "wb") as out:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self._path(sha)
            if self._intact(sha) and _touch(final):
                return Blob(sha, size)  # same content already stored (and now marked fresh for gc)
            # missing, or a damaged copy: the fresh bytes replace it
            private.make_dirs(final.parent)
            os.chmod(tmp, private.READ_ONLY_MODE)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            return Blob(sha, size)
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, path: Path | str) -> Blob:
        with open(path, "rb") as f:
            return self.put_stream(f)

    def put_bytes(self, data: bytes) -> Blob:
        import io

        return self.put_stream(io.BytesIO(data))

    def remove_orphans(self, process_start: Callable[[int], float | None]) -> list[str]:
        """Remove the temporary files of writers that died midway (`mlbox.store.tempfiles`);
        ``process_start`` tells a live pid's start time. Returns the names removed."""
        return tempfiles.remove_orphans(self._tmp, process_start)

    def _intact(self, sha256: str) -> bool:
        try:
            os.close(self._open_verified_fd(sha256))
        except (NotFound, IntegrityError):
            return False
        return True

    def objects(self) -> Iterator[tuple[str, int, float]]:
        """``(sha256, size, mtime)`` of every object, in no particular order."""
        for fan in os.scandir(self._objects):
            if not fan.is_dir(follow_symlinks=False) or len(fan.name) != 2:
                continue
            for entry in os.scandir(fan.path):
                sha = fan.name + entry.name
                if not _SHA.fullmatch(sha):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed meanwhile
                yield sha, st.st_size, st.st_mtime

    def discard(self, sha256: str, *, touched_since: float) -> bool:
        """Remove an object nothing references; False when it was kept (or already gone).

        The object is first renamed aside, so no writer can touch it any more, and then looked
        at: a writer that stored the same bytes before the rename touched it (mtime at or after
        ``touched_since``) and may be recording a reference right now, so it goes back; a writer
        after the rename finds no object and writes it afresh (`put_stream`)."""
        final = self._path(sha256)
        aside = self._tmp / tempfiles.temp_name()
        try:
            os.rename(final, aside)
        except FileNotFoundError:
            return False
        try:
            if os.lstat(aside).st_mtime >= touched_since:
                with contextlib.suppress(FileExistsError):  # a writer stored it afresh meanwhile
                    os.link(aside, final)
                return False
            return True
        finally:
            aside.unlink(missing_ok=True)

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def _open_verified_fd(self, sha256: str) -> int:
        path = self._path(sha256)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise NotFound(f"artifact object {sha256} is missing from the store") from None
        except OSError as exc:  # ELOOP: the object is a symlink
            raise IntegrityError(f"artifact object {sha256} is not a regular file") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise IntegrityError(f"artifact object {sha256} is not a regular file")
        digest = hashlib.sha256()
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
        if digest.hexdigest() != sha256:
            os.close(fd)
            raise IntegrityError(f"artifact object {sha256} does not match its sha256")
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def iter_bytes(self, sha256: str) -> Iterator[bytes]:
        """The object's bytes in chunks, after verifying the whole object."""
        fd = self._open_verified_fd(sha256)
        try:
            while chunk := os.read(fd, CHUNK):
                yield chunk
        finally:
            os.close(fd)

    def read_bytes(self, sha256: str) -> bytes:
        return b"".join(self.iter_bytes(sha256))

    def copy_to(self, sha256: str, dest: Path | str) -> Path:
        """Write a verified copy of an object to ``dest`` (for loading models)."""
        dest = Path(dest)
        private.make_dirs(dest.parent)
        with os.fdopen(private.create(dest, exclusive=False), "wb") as out:
            for chunk in self.iter_bytes(sha256):
                out.write(chunk)
        return dest


def _touch(path: Path) -> bool:
    """Mark an object as stored now (with the precise clock: the kernel's file times lag it
    by a tick); False when it vanished since it was checked (`ArtifactStore.discard`)."""
    now = time.time_ns()
    try:
        os.utime(path, ns=(now, now), follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
