"""A backup of a home taken while it is in use, and its restore into an empty home.

Order is what makes a backup taken under load consistent. The database is copied first, with
SQLite's online backup API: one read transaction, so the copy is the database as of one
commit, and in WAL mode the appliance, jobs and notebooks keep writing meanwhile. Every
file the copied rows can name was already in place before that commit (an artifact object is
renamed into the store before its row is inserted; a Parquet segment is renamed into place
and never rewritten), and objects are never deleted, so copying the files *after* the
database finds every one the rows need. Objects are copied by hash (verified on the way, a
damaged one is left out and said); other files are copied as they are and hashed into the
manifest, ``mlbox-backup.json``.

A restore checks the whole backup against its manifest before it writes anything, builds
the home beside its target and renames it into place, so a failed restore leaves no half
home. It refuses a home that is not empty: merging two homes would mix two histories.

Not copied: the running appliance's lock and announcement, temporaries, the model cache
(rebuilt from the objects on demand) and the API token (a restored home makes a new one,
so a backup that leaks does not carry a live credential).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlbox.store import private, tempfiles
from mlbox.store.errors import Conflict, IntegrityError, InvalidInput, NotFound

MANIFEST = "mlbox-backup.json"
FORMAT = 1
DB_NAME = "mlbox.db"

SKIP_TOP = frozenset(
    {
        DB_NAME,
        f"{DB_NAME}-wal",
        f"{DB_NAME}-shm",
        f"{DB_NAME}-journal",
        "appliance.lock",
        "appliance.json",
        "token",
        "cache",
        "quarantine",
        "backups",
        MANIFEST,
    }
)
"""Entries at the top of the home a backup leaves out (see the module docstring)."""

_SHA = re.compile(r"[0-9a-f]{64}")
CHUNK = 1 << 20


@dataclass
class Summary:
    """What a backup or restore did: files and bytes, and what it left out and why."""

    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


def _temporary(name: str) -> bool:
    """Temporaries, and an SQLite file's companions (its database is copied whole)."""
    return name.startswith(".") or name.endswith((".tmp", "-wal", "-shm", "-journal"))


def _copy_hashed(src: Path, dest: Path, mode: int) -> tuple[str, int]:
    """Copy ``src`` to a new private ``dest``; its sha256 and size."""
    digest = hashlib.sha256()
    size = 0
    private.make_dirs(dest.parent)
    with open(src, "rb") as fin, os.fdopen(private.create(dest), "wb") as fout:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    os.chmod(dest, mode)
    return digest.hexdigest(), size


def _empty_target(path: Path, what: str, field: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise Conflict(f"{what} {path} is not an empty folder: name a new or empty one", field=field)


def _finish(staging: Path, target: Path) -> None:
    """Put the staged folder in place: a rename (onto an empty folder, which rename allows)."""
    os.replace(staging, target)
    os.chmod(target, private.DIR_MODE)


def _copy_database(db_path: Path, dest: Path) -> None:
    """The database as of one commit, through SQLite's online backup API."""
    os.close(private.create(dest))
    src = sqlite3.connect(db_path, timeout=30)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
            out.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            out.close()
    finally:
        src.close()


def backup(home: Path, dest: Path) -> Summary:
    """Copy ``home`` to ``dest`` (a new or empty folder), usable while the home is in use."""
    home, dest = Path(home), Path(dest)
    if not (home / DB_NAME).is_file():
        raise NotFound(f"{home} is not an mlbox home (no {DB_NAME})", field="MLBOX_HOME")
    _empty_target(dest, "the backup folder", "DEST")
    if dest.resolve().is_relative_to(home.resolve()):
        raise InvalidInput(f"the backup folder {dest} is inside the home {home}", field="DEST")
    private.make_dirs(dest.parent)
    staging = dest.parent / tempfiles.temp_name(f".{dest.name}.partial-")
    private.make_dirs(staging)
    summary = Summary()
    files: dict[str, dict[str, Any]] = {}
    try:
        _copy_database(home / DB_NAME, staging / DB_NAME)
        files[DB_NAME] = _describe(staging / DB_NAME)
        for rel, src in _home_files(home):
            if src.is_symlink() or not src.is_file():
                summary.skipped.append(f"{rel} (not a regular file)")
                continue
            if _sqlite(src):  # another database of the home (the online feature store): as of one commit
                private.make_dirs((staging / rel).parent)
                _copy_database(src, staging / rel)
                files[rel] = _describe(staging / rel)
                continue
            obj = _object_name(rel)
            mode = private.READ_ONLY_MODE if obj else private.FILE_MODE
            try:
                sha, size = _copy_hashed(src, staging / rel, mode)
            except FileNotFoundError:  # a temporary renamed or removed meanwhile
                continue
            if obj and sha != obj:
                (staging / rel).unlink()
                summary.skipped.append(f"{rel} (damaged: its bytes do not match its name)")
                continue
            files[rel] = {"sha256": sha, "size": size}
        manifest = {
            "format": FORMAT,
            "created": time.time(),
            "home": str(home),
            "files": files,
            "skipped": summary.skipped,
        }
        private.write_bytes(staging / MANIFEST, json.dumps(manifest, indent=1).encode())
        _finish(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    summary.files = len(files)
    summary.bytes = sum(int(f["size"]) for f in files.values())
    return summary


def _sqlite(path: Path) -> bool:
    """Is ``path`` an SQLite database (its header), which is copied through the backup API?"""
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _describe(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "size": path.stat().st_size}


def _object_name(rel: str) -> str | None:
    """The sha256 an ``artifacts/objects/ab/cdef…`` path names; None for any other file."""
    parts = rel.split("/")
    if len(parts) == 4 and parts[:2] == ["artifacts", "objects"] and _SHA.fullmatch(parts[2] + parts[3]):
        return parts[2] + parts[3]
    return None


def _home_files(home: Path) -> list[tuple[str, Path]]:
    """``(relative path, path)`` of each file a backup copies (see `SKIP_TOP`), objects first."""
    found: list[tuple[str, Path]] = []
    for top in sorted(os.listdir(home)):
        if top in SKIP_TOP or _temporary(top):
            continue
        path = home / top
        if path.is_dir() and not path.is_symlink():
            for folder, dirs, names in os.walk(path):
                here = Path(folder)
                dirs[:] = sorted(d for d in dirs if not _temporary(d) and not (here / d).is_symlink())
                if here == home / "artifacts":
                    dirs[:] = [d for d in dirs if d != "tmp"]
                found += [
                    ((here / n).relative_to(home).as_posix(), here / n)
                    for n in sorted(names)
                    if not _temporary(n)
                ]
        else:
            found.append((top, path))
    found.sort(key=lambda item: (_object_name(item[0]) is None, item[0]))
    return found


def _safe_rel(rel: str) -> str:
    """A manifest path that stays inside the home it is restored to."""
    parts = rel.split("/")
    if (
        not rel
        or rel.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or "\\" in rel
        or "\0" in rel
    ):
        raise IntegrityError(f"the backup's manifest names a path outside the home: {rel!r}")
    return rel


def verify(src: Path) -> dict[str, Any]:
    """The backup's manifest, once every file it lists has its size and sha256."""
    src = Path(src)
    try:
        manifest: dict[str, Any] = json.loads((src / MANIFEST).read_text())
        files = manifest["files"]
        assert isinstance(files, dict) and DB_NAME in files
    except (OSError, ValueError, KeyError, AssertionError):
        raise InvalidInput(
            f"{src} is not an mlbox backup (no readable {MANIFEST}): make one with mlbox backup", field="SRC"
        ) from None
    if manifest.get("format") != FORMAT:
        raise InvalidInput(f"{src} is a backup of format {manifest.get('format')}; this mlbox reads {FORMAT}")
    for rel, meta in files.items():
        path = src / _safe_rel(rel)
        if not path.is_file() or path.is_symlink():
            raise IntegrityError(f"the backup {src} lacks {rel}: it cannot be restored whole")
        if _describe(path) != {"sha256": meta["sha256"], "size": meta["size"]}:
            raise IntegrityError(f"the backup {src} is damaged: {rel} does not match its manifest")
    return manifest


def restore(src: Path, home: Path) -> Summary:
    """Restore the backup ``src`` into ``home``, which must not exist or be empty."""
    src, home = Path(src), Path(home)
    _empty_target(home, "MLBOX_HOME", "MLBOX_HOME")
    manifest = verify(src)
    private.make_dirs(home.parent)
    staging = home.parent / tempfiles.temp_name(f".{home.name}.restoring-")
    private.make_dirs(staging)
    summary = Summary(skipped=list(manifest.get("skipped", [])))
    try:
        for rel, meta in manifest["files"].items():
            mode = private.READ_ONLY_MODE if _object_name(rel) else private.FILE_MODE
            sha, size = _copy_hashed(src / rel, staging / rel, mode)
            if sha != meta["sha256"]:  # changed since verify: refuse rather than restore it
                raise IntegrityError(f"{rel} changed while it was being restored")
            summary.files += 1
            summary.bytes += size
        conn = sqlite3.connect(staging / DB_NAME)
        try:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
        if problems != ["ok"]:
            raise IntegrityError(f"the backup's database fails its integrity check: {problems[0]}")
        private.make_dirs(staging / "artifacts" / "tmp")
        private.make_dirs(staging / "tables")
        _empty_target(home, "MLBOX_HOME", "MLBOX_HOME")  # still empty: nobody wrote it meanwhile
        _finish(staging, home)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def snapshot_database(db_path: Path, dest: Path) -> Path:
    """A consistent, private copy of the database file (``VACUUM INTO``: one read transaction,
    compacted, no WAL beside it), made before its schema changes."""
    private.make_dirs(dest.parent)
    os.close(private.create(dest))  # VACUUM INTO accepts an empty file, and keeps its 0600
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    try:
        conn.execute("VACUUM INTO ?", (str(dest),))
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    finally:
        conn.close()
    return dest
