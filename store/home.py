"""The layout of `$MLBOX_HOME`, created on first use.

Every path mlbox writes lives below one folder so a user can copy, back up or
browse it as a whole; this module is the only place that knows the names.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path


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
