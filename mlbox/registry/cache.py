"""Verified local copies of model files, the only place models are loaded from.

Frameworks load models from paths, so a version's files are copied out of the
artifact store (which checks every object's sha256 as it reads) into
``cache/models/<key>/``. The invariants:

* A folder is built under a temporary name and renamed into place, with a
  marker listing every file's sha256 written last: a crash or a concurrent
  loader never exposes half a model.
* A completed folder is still re-hashed on every use and rebuilt from the
  store when anything differs (or the marker is missing), so an edited cache
  file is never loaded; an edited store object fails the rebuild with an
  `IntegrityError` naming the model, version and file.
* Paths come from the database but pass `clean_relpath` again before they
  touch the filesystem, and files are opened without following symlinks.
* Folders are 0700 and files 0400 (`mlbox.store.private`), like the store they come from.
* Temporary names (``.tmp-``, ``.trash-``, and registration's ``staging/register-``) record
  their writer (`mlbox.store.tempfiles`), so what a killed writer left is removed at the next
  appliance start (`ModelCache.remove_orphans`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from mlbox.registry.schemas import ModelFile
from mlbox.store import private, tempfiles
from mlbox.store.artifacts import CHUNK, ArtifactStore, clean_relpath
from mlbox.store.errors import IntegrityError, NotFound

MARKER = ".mlbox-verified.json"
TEMP_PREFIXES = (".tmp-", ".trash-")
"""Temporary folders directly under the cache: one being built, one being deleted."""
STAGING = "staging"
STAGING_PREFIX = "register-"
"""Registration's private folders, ``staging/register-<pid>-<start>-<hex>``."""


def cache_key(manifest: object, files: Sequence[ModelFile]) -> str:
    """Same manifest and same file contents: same folder, shared by every version that has them."""
    body = json.dumps(
        {"manifest": manifest, "files": sorted((f.path, f.sha256) for f in files)}, sort_keys=True
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _sha256(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    digest = hashlib.sha256()
    try:
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


class ModelCache:
    def __init__(self, root: Path, artifacts: ArtifactStore) -> None:
        self.root = root
        self.artifacts = artifacts

    def _intact(self, folder: Path, files: Sequence[ModelFile]) -> bool:
        try:
            marker = json.loads((folder / MARKER).read_text())
        except (OSError, ValueError):
            return False
        expected = {clean_relpath(f.path): f.sha256 for f in files}
        if marker != expected:
            return False
        return all(_sha256(folder / path) == sha for path, sha in expected.items())

    def materialize(self, key: str, files: Sequence[ModelFile], label: str) -> Path:
        """The verified folder for ``files``; ``label`` ("model 'x' version 3") names it in errors."""
        final = self.root / key
        if final.is_dir() and self._intact(final, files):
            return final
        private.make_dirs(self.root)
        if final.exists():
            self._discard(final)
        tmp = self.root / tempfiles.temp_name(".tmp-")
        try:
            self._fill(tmp, files, label)
            try:
                os.rename(tmp, final)
            except OSError:  # another process finished the same folder first
                if not (final.is_dir() and self._intact(final, files)):
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def _fill(self, folder: Path, files: Sequence[ModelFile], label: str) -> None:
        private.make_dirs(folder.parent)
        folder.mkdir(mode=private.DIR_MODE)
        marker: dict[str, str] = {}
        for f in files:
            rel = clean_relpath(f.path)
            dest = folder / rel
            try:
                self.artifacts.copy_to(f.sha256, dest)
            except IntegrityError:
                raise IntegrityError(
                    f"{label}: file {rel!r} no longer matches its sha256 {f.sha256[:12]}… (the artifact"
                    " was modified or is corrupt); refusing to load it",
                    field="model",
                ) from None
            except NotFound:
                raise IntegrityError(
                    f"{label}: file {rel!r} (sha256 {f.sha256[:12]}…) is missing from the artifact store;"
                    " refusing to load it",
                    field="model",
                ) from None
            os.chmod(dest, private.READ_ONLY_MODE)
            marker[rel] = f.sha256
        private.write_bytes(folder / MARKER, json.dumps(marker, sort_keys=True).encode())

    def _discard(self, folder: Path) -> None:
        """Move a stale folder aside before deleting it, so no loader sees it half gone."""
        trash = self.root / tempfiles.temp_name(".trash-")
        try:
            os.rename(folder, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def staging(self) -> tempfile.TemporaryDirectory[str]:
        """A private folder (0700) for one registration to build a version in, removed when done;
        named after this process, so one a killed registration left is found (`remove_orphans`)."""
        root = private.make_dirs(self.root / STAGING)
        return tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{tempfiles.writer_tag()}-", dir=root)

    def remove_orphans(self, process_start: Callable[[int], float | None]) -> list[str]:
        """Remove the folders that writers killed midway left (half-built, half-deleted, staged);
        ``process_start`` tells a live pid's start time. Returns their paths below the cache."""
        removed = tempfiles.remove_orphans(self.root, process_start, TEMP_PREFIXES)
        staged = tempfiles.remove_orphans(self.root / STAGING, process_start, (STAGING_PREFIX,))
        return removed + [f"{STAGING}/{name}" for name in staged]
