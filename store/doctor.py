"""What can go wrong in a home on disk, found and (where no data is lost) fixed.

A home holds months of work, and disks rot, processes get killed, people copy folders
by hand. Each check here looks at one kind of damage with nothing but the bytes:

* the SQLite file (``PRAGMA integrity_check``, ``foreign_key_check``);
* every artifact object against the sha256 that names it;
* rows that name an object that is not there (the (table, column) pairs are passed in: the
  services declare which of their columns hold object names; the store knows no service);
* temporaries and staging folders whose writer died (`mlbox.store.tempfiles`);
* Parquet files that do not read to the end.

A repair never deletes data: a damaged object or an unreadable Parquet file is moved to
``quarantine/`` (so readers stop tripping over it and the bytes remain for a person to
look at); only temporaries of dead writers, which nothing refers to, are removed. What
cannot be fixed (a damaged database, a missing object) is said, with what to do.

The store imports nothing of mlbox's services: liveness of a writer is passed in as
``process_start`` (as `mlbox.store.tempfiles` takes it).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mlbox.store import private, tempfiles

QUARANTINE = "quarantine"
"""The folder of the home where a repair moves what does not read (kept, never deleted)."""

_SHA = re.compile(r"[0-9a-f]{64}")
_OLD_PARQUET_TMP = re.compile(r"\..+\.(\d+)-[0-9a-f]+\.tmp")
"""``.<name>.<pid>-<hex>.tmp``: a Parquet temporary as written before names recorded start times."""

ProcessStart = Callable[[int], float | None]


@dataclass(frozen=True)
class Finding:
    """One problem: what kind, where (a path below the home, or a table), what is wrong, and
    what a repair did (``repaired``) or why it cannot (``advice``)."""

    kind: str
    where: str
    problem: str
    fixable: bool
    advice: str = ""
    repaired: str = ""


# -- the database -------------------------------------------------------------------------------


def check_database(path: Path) -> list[Finding]:
    """``integrity_check`` and ``foreign_key_check`` of the file; nothing here can be repaired in
    place without risking rows, so the advice is a backup."""
    advice = "restore a backup (mlbox restore) into a new home; the damaged file is left as it is"
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(path, timeout=30)
    except sqlite3.Error as exc:
        return [Finding("database", path.name, f"cannot open: {exc}", False, advice)]
    try:
        problems = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
        if problems != ["ok"]:
            return [Finding("database", path.name, p, False, advice) for p in problems[:20]]
        orphans = conn.execute("PRAGMA foreign_key_check").fetchall()
        return [
            Finding("database", f"{table} rowid {rowid}", f"refers to a missing {parent} row", False, advice)
            for table, rowid, parent, _fk in orphans[:20]
        ]
    except sqlite3.Error as exc:
        return [Finding("database", path.name, f"unreadable: {exc}", False, advice)]
    finally:
        conn.close()


# -- artifact objects ---------------------------------------------------------------------------


def _objects(objects: Path) -> Iterator[tuple[str, Path]]:
    """``(name, path)`` of every entry two levels below ``objects`` (``ab/cdef…``)."""
    try:
        shards = sorted(os.scandir(objects), key=lambda e: e.name)
    except OSError:
        return
    for shard in shards:
        if not shard.is_dir(follow_symlinks=False):
            yield shard.name, Path(shard.path)
            continue
        for entry in sorted(os.scandir(shard.path), key=lambda e: e.name):
            yield shard.name + entry.name, Path(entry.path)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (symlinks are not followed: the caller checks first)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_objects(artifacts: Path) -> list[Finding]:
    """Every object whose bytes do not hash to its name, or that is not a regular file."""
    found = []
    for name, path in _objects(artifacts / "objects"):
        rel = f"artifacts/objects/{path.parent.name}/{path.name}"
        if not _SHA.fullmatch(name) or path.is_symlink() or not path.is_file():
            found.append(Finding("object", rel, "not an object of the store", True))
            continue
        try:
            actual = file_sha256(path)
        except OSError as exc:
            found.append(Finding("object", rel, f"unreadable: {exc.strerror or exc}", True))
            continue
        if actual != name:
            found.append(Finding("object", rel, f"bytes hash to {actual[:12]}…, not to its name", True))
    return found


def missing_objects(
    db_path: Path, artifacts: Path, references: Iterable[tuple[str, str]], damaged: Iterable[str] = ()
) -> list[Finding]:
    """Rows whose ``(table, column)`` names an object that is missing (or in ``damaged``, the
    names `check_objects` found): those rows' data is gone unless a backup has it."""
    bad = set(damaged)
    found = []
    if not db_path.exists():
        return []
    try:
        conn = sqlite3.connect(db_path, timeout=30)
    except sqlite3.Error:
        return []  # check_database says why
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, column in references:
            if table not in tables:
                continue
            rows = conn.execute(f'SELECT "{column}", COUNT(*) FROM "{table}" GROUP BY "{column}"')
            for sha, count in rows:
                path = artifacts / "objects" / str(sha)[:2] / str(sha)[2:]
                state = "damaged" if sha in bad else "missing" if not path.is_file() else None
                if state:
                    found.append(
                        Finding(
                            "reference",
                            f"{table}.{column} = {sha}",
                            f"{count} row(s) name an object that is {state}",
                            False,
                            "restore the object from a backup (mlbox restore into a new home) or log it again",
                        )
                    )
    except sqlite3.Error:
        return found
    finally:
        conn.close()
    return found


# -- temporaries of dead writers ----------------------------------------------------------------


@dataclass(frozen=True)
class TempRule:
    """Where temporaries live and how they are named: ``folder`` below the home (``""`` the
    home itself), their name ``prefixes``, and whether the rule holds in every folder below."""

    folder: str
    prefixes: tuple[str, ...]
    recursive: bool = False


def stray_temporaries(home: Path, rules: Sequence[TempRule], process_start: ProcessStart) -> list[Path]:
    """Temporaries whose writer is gone (paths below ``home``), by the rules given."""
    found: set[Path] = set()
    for rule in rules:
        top = home / rule.folder if rule.folder else home
        folders = [top]
        if rule.recursive:
            folders = [Path(f) for f, _d, _f in os.walk(top) if QUARANTINE not in Path(f).parts]
        for folder in folders:
            found.update(_dead_in(folder, rule.prefixes, process_start))
    return sorted(found)


def _dead_in(folder: Path, prefixes: tuple[str, ...], process_start: ProcessStart) -> list[Path]:
    entries: list[tuple[str, float]] = []
    old: list[tuple[str, float, int]] = []
    try:
        listed = list(os.scandir(folder))
    except OSError:
        return []
    pids: set[int] = set()
    for entry in listed:
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        writer = next((w for p in prefixes if (w := tempfiles.writer_of(entry.name, p))), None)
        if writer is not None:
            entries.append((entry.name, mtime))
            pids.add(writer.pid)
        elif m := _OLD_PARQUET_TMP.fullmatch(entry.name):
            old.append((entry.name, mtime, int(m.group(1))))
            pids.add(int(m.group(1)))
    starts = {pid: process_start(pid) for pid in pids}
    dead = tempfiles.orphans(entries, starts, prefixes)
    dead += [
        name
        for name, mtime, pid in old
        if tempfiles.is_orphan(tempfiles.Writer(pid, None), mtime, starts[pid])
    ]
    return [folder / name for name in dead]


def check_temporaries(home: Path, rules: Sequence[TempRule], process_start: ProcessStart) -> list[Finding]:
    return [
        Finding("temporary", str(p.relative_to(home)), "left by a writer that died midway", True)
        for p in stray_temporaries(home, rules, process_start)
    ]


# -- Parquet ------------------------------------------------------------------------------------


def parquet_files(home: Path) -> list[Path]:
    """Every Parquet file of the home (outside the quarantine), temporaries left out."""
    found = []
    for folder, dirs, files in os.walk(home):
        dirs[:] = sorted(d for d in dirs if not (Path(folder) == home and d in (QUARANTINE, "backups")))
        found += [Path(folder) / f for f in sorted(files) if f.endswith(".parquet") and not f.startswith(".")]
    return found


def check_parquet(home: Path) -> list[Finding]:
    """Parquet files that do not read to the end (a truncated segment, a flipped page)."""
    import pyarrow.parquet as pq

    found = []
    for path in parquet_files(home):
        try:
            for _batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
                pass
        except Exception as exc:  # pyarrow raises several types for damaged files
            problem = " ".join(str(exc).split())[:160]
            found.append(Finding("parquet", str(path.relative_to(home)), f"does not read: {problem}", True))
    return found


# -- the whole home -----------------------------------------------------------------------------


def examine(
    home: Path,
    *,
    references: Iterable[tuple[str, str]],
    temp_rules: Sequence[TempRule],
    process_start: ProcessStart,
    repair: bool = False,
) -> list[Finding]:
    """Every check over ``home``; with ``repair``, what is fixable is fixed (each finding then says
    what was done). The database is checked first and read only."""
    db_path = home / "mlbox.db"
    artifacts = home / "artifacts"
    objects = check_objects(artifacts)
    damaged = [f.where.replace("artifacts/objects/", "").replace("/", "") for f in objects]
    findings = check_database(db_path)
    findings += objects
    findings += missing_objects(db_path, artifacts, references, damaged)
    findings += check_temporaries(home, temp_rules, process_start)
    findings += check_parquet(home)
    if repair:
        findings = [fix(home, f) if f.fixable else f for f in findings]
    return findings


def fix(home: Path, finding: Finding) -> Finding:
    """Repair one fixable finding: temporaries are removed, damaged objects and unreadable Parquet
    files moved to the quarantine (their bytes kept)."""
    path = home / finding.where
    try:
        if finding.kind == "temporary":
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            return replace(finding, repaired="removed")
        target = home / QUARANTINE / finding.where
        private.make_dirs(target.parent)
        os.replace(path, target)
        return replace(finding, repaired=f"moved to {target.relative_to(home)}")
    except OSError as exc:
        return replace(finding, fixable=False, advice=f"repair failed: {exc.strerror or exc}")
