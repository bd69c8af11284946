"""Opening a home that cannot be used: one line on stderr naming the path and what to do, exit 2.

A garbage or truncated ``mlbox.db``, ``MLBOX_HOME`` pointing at a file (or below one), and a
database written by a newer mlbox (a migration this release does not know). Run as a user would:
the ``mlbox`` command in a real process against a home under tmp_path.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.store.errors import UnusableStore
from mlbox.store.migrations import RELEASE
from tests.helpers import MLBOX


def mlbox(home: Path, *argv: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBOX_")}
    env["MLBOX_HOME"] = str(home)
    done = subprocess.run([str(MLBOX), *argv], env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def one_line_error(code: int, out: str, err: str) -> str:
    assert (code, out) == (2, ""), err
    assert err.startswith("mlbox: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err
    return err


@pytest.fixture(scope="module")
def good_db(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a real mlbox.db with every service's tables (checkpointed: no WAL beside it)."""
    home = tmp_path_factory.mktemp("good") / "home"
    services = Services.open(Settings(home=home))
    services.tracking.create_run("exp", "r")
    conn = sqlite3.connect(home / "mlbox.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return (home / "mlbox.db").read_bytes()


@pytest.mark.parametrize("content", ["garbage", "truncated"])
def test_a_database_that_is_not_one_is_named(tmp_path: Path, good_db: bytes, content: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    data = b"this is not a database\n" * 4 if content == "garbage" else good_db[: len(good_db) // 2]
    (home / "mlbox.db").write_bytes(data)
    err = one_line_error(*mlbox(home, "runs", "ls"))
    assert str(home / "mlbox.db") in err and "move it aside" in err and "MLBOX_HOME" in err
    assert (home / "mlbox.db").read_bytes() == data  # nothing was changed


def test_home_that_is_a_file_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("not a folder")
    err = one_line_error(*mlbox(blocker, "runs", "ls"))
    assert f"MLBOX_HOME {blocker} is a file" in err and "Errno" not in err
    err = one_line_error(*mlbox(blocker / "below", "runs", "ls"))
    assert str(blocker / "below") in err and "point MLBOX_HOME at a folder" in err


def test_home_that_is_a_file_from_python(tmp_path: Path) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("")
    with pytest.raises(UnusableStore) as err:
        Services.open(Settings(home=blocker))
    assert err.value.field == "MLBOX_HOME" and str(blocker) in err.value.message


def test_a_database_from_a_newer_mlbox_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Services.open(Settings(home=home))
    conn = sqlite3.connect(home / "mlbox.db")
    conn.execute("INSERT INTO _migrations VALUES ('scheduler', 'm042_gangs', ?, '2.3.0')", (time.time(),))
    conn.commit()
    conn.close()
    err = one_line_error(*mlbox(home, "jobs", "ls"))
    assert str(home / "mlbox.db") in err and "mlbox 2.3.0" in err and f"mlbox {RELEASE}" in err
    assert "m042_gangs" in err and "upgrade mlbox" in err
