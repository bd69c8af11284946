"""The layout of `$MLBOX_HOME`, created on first use, and who serves it.

Every path mlbox writes lives below one folder so a user can copy, back up or
browse it as a whole; this module is the only place that knows the names.

One home has one appliance: it holds an exclusive ``flock`` on
``appliance.lock`` for its whole life (the kernel drops the lock with the
process, however it ends, so a crash never leaves a home "taken"), and once
its API listens it announces its address in ``appliance.json``. The lock
decides; the announcement only tells other front ends where to find it.

What the home holds is private to its owner (`mlbox.store.private`): the folders made here
are 0700 and the files 0600, so a copied home or one whose mode was loosened exposes nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlbox.store import private
from mlbox.store.errors import Conflict, UnusableStore

NO_API = "no-api"
"""The lock file's mark of a holder whose HTTP API did not start (`ApplianceLock.mark_no_api`)."""

CLAIM_WAIT_S = 10.0
"""How long a refused claim waits for the holder to announce its address (it may have taken
the lock a moment ago and still be binding its port), so the refusal can name it."""


@dataclass(frozen=True)
class Announcement:
    """What a running appliance says of itself in ``appliance.json``."""

    pid: int
    url: str
    started: float


def _alive(pid: int) -> bool:
    """Is ``pid`` a live process (a zombie counts as gone)?"""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


class ApplianceLock:
    """This process's hold on a home (`Home.claim_appliance`); `release` gives it up."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def mark_no_api(self) -> None:
        """Say in the lock file that this holder's HTTP API did not start (its port was taken): a
        refused claim then names it at once instead of waiting for an address that will not come."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()} {NO_API}\n".encode(), 0)

    def release(self) -> None:
        """Unlock and close (the lock file stays: unlinking it would let two holders lock two files)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def db_path(self) -> Path:
        return self.root / "mlbox.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def token_path(self) -> Path:
        return self.root / "token"

    @property
    def appliance_path(self) -> Path:
        """Where a running appliance announces itself (pid, address)."""
        return self.root / "appliance.json"

    @property
    def lock_path(self) -> Path:
        """Locked (``flock``) by the one appliance serving the home; holds its pid as text."""
        return self.root / "appliance.lock"

    def remove_orphans(self, process_start: Callable[[int], float | None]) -> list[Path]:
        """At appliance start: Parquet temporaries (``tables/``) whose writer died midway; the
        services sweep their own folders (artifacts, the model cache, jobs)."""
        from mlbox.store import tempfiles

        return tempfiles.remove_orphans_below(self.tables, process_start)

    def claim_appliance(self, wait_s: float = CLAIM_WAIT_S) -> ApplianceLock:
        """Take the home for this process's appliance, or raise `Conflict` naming the holder.

        The lock file is opened non-inheritable (Python's default), so job processes started
        by the appliance never keep the home locked after it ends.
        """
        self.ensure()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self._taken(wait_s) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return ApplianceLock(fd)

    def _taken(self, wait_s: float) -> Conflict:
        """The refusal of a claim: the holder's pid (from the lock file) and, once it has
        announced it, its address."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                held = self.lock_path.read_text().split()
                pid = int(held[0]) if held else 0
            except (OSError, ValueError):
                held, pid = [], 0
            if NO_API in held:
                where = "its HTTP API did not start"
                break
            ann = self.running_appliance()
            if ann is not None and ann.pid == pid:
                where = ann.url
                break
            if time.monotonic() > deadline:
                where = "no HTTP API announced yet"
                break
            time.sleep(0.05)
        holder = f"pid {pid}" if pid else "another process"
        return Conflict(
            f"already running ({holder}, {where}) on the home {self.root}; use it, or stop it first",
            field="MLBOX_HOME",
        )

    def running_appliance(self) -> Announcement | None:
        """The appliance serving this home, if one other than this process is alive.

        Front ends ask this to work beside a running ``mlbox up`` instead of
        starting a second API on the same port; a stale file (its process
        gone) reads as none.
        """
        try:
            data = json.loads(self.appliance_path.read_text())
            ann = Announcement(int(data["pid"]), str(data["url"]), float(data["started"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if ann.pid == os.getpid() or not _alive(ann.pid):
            return None
        return ann

    def announce(self, url: str) -> None:
        """Say that this process serves the home at ``url`` (atomically: never half a file)."""
        tmp = self.appliance_path.with_suffix(f".{os.getpid()}.tmp")
        private.write_bytes(
            tmp, json.dumps({"pid": os.getpid(), "url": url, "started": time.time()}).encode()
        )
        os.replace(tmp, self.appliance_path)

    def unannounce(self) -> None:
        """Withdraw this process's announcement (another process's is left alone)."""
        try:
            if json.loads(self.appliance_path.read_text()).get("pid") == os.getpid():
                self.appliance_path.unlink()
        except (OSError, ValueError):
            pass

    def ensure(self) -> Home:
        """Create the home's folders; `UnusableStore` naming the path when it cannot be one
        (a file is there, a parent is a file, no permission)."""
        if self.root.exists() and not self.root.is_dir():
            raise UnusableStore(
                f"MLBOX_HOME {self.root} is a file, not a folder: point MLBOX_HOME at a folder"
                " (a new one is created), or move the file aside",
                field="MLBOX_HOME",
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)  # its parents are the user's, not the home's
            os.chmod(self.root, private.DIR_MODE)
            for path in (self.artifacts, self.tables):
                private.make_dirs(path)
        except OSError as exc:
            raise UnusableStore(
                f"cannot make the mlbox home {self.root}: {exc.strerror or exc}"
                f" ({exc.filename or self.root}); point MLBOX_HOME at a folder you can write",
                field="MLBOX_HOME",
            ) from None
        return self

    def token(self) -> str:
        """The management API token, created once with mode 0600.

        Written to a private temporary file and hard-linked into place, so two
        processes starting at once agree on one token and never read half of it.
        """
        self.ensure()
        if not self.token_path.exists():
            tmp = self.root / f".token.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, self.token_path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return self.token_path.read_text().strip()
