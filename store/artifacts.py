"""Content-addressed artifact store: bytes named by their sha256.

Invariants:

* An object is written to a temporary file in the same store, fsynced, then
  renamed into place (and the folder fsynced), so a crash never leaves a
  half-written object under a valid name.
* Objects are read through a sha256 name that is checked to be 64 hex
  digits; no caller-given path ever becomes a filesystem path, so nothing
  outside the store can be reached (no ``../``, no absolute path).
* An object that is a symlink is refused, and every read verifies the hash.

Logical artifact paths (``model/weights.pt``) live in the database and map to
these names; `clean_relpath` is the one validator for them.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

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
        self._objects.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        if not isinstance(sha256, str) or not _SHA.fullmatch(sha256):
            raise InvalidInput(f"not a sha256 digest: {sha256!r}", field="sha256")
        return self._objects / sha256[:2] / sha256[2:]

    def put_stream(self, stream: BinaryIO) -> Blob:
        """Copy a stream into the store, hashing as it goes."""
        digest = hashlib.sha256()
        size = 0
        tmp = self._tmp / f"{os.getpid()}-{secrets.token_hex(8)}"
        try:
            with open(tmp, "xb") as out:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self._path(sha)
            if self._intact(sha):
                return Blob(sha, size)  # same content already stored
            # missing, or a damaged copy: the fresh bytes replace it
            final.parent.mkdir(exist_ok=True)
            os.chmod(tmp, 0o444)
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

    def _intact(self, sha256: str) -> bool:
        try:
            os.close(self._open_verified_fd(sha256))
        except (NotFound, IntegrityError):
            return False
        return True

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
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as out:
            for chunk in self.iter_bytes(sha256):
                out.write(chunk)
        return dest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
