"""The layout of `$MLBOX_HOME`, created on first use.

Every path mlbox writes lives below one folder so a user can copy, back up or
browse it as a whole; this module is the only place that knows the names.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path


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
        tmp.write_text(json.dumps({"pid": os.getpid(), "url": url, "started": time.time()}))
        os.replace(tmp, self.appliance_path)

    def unannounce(self) -> None:
        """Withdraw this process's announcement (another process's is left alone)."""
        try:
            if json.loads(self.appliance_path.read_text()).get("pid") == os.getpid():
                self.appliance_path.unlink()
        except (OSError, ValueError):
            pass

    def ensure(self) -> Home:
        for path in (self.root, self.artifacts, self.tables):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
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
