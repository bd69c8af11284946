"""Homes written by released mlbox versions (``tests/fixtures/home-<release>.tar.gz``, made by
``tests/fixtures/make_home.py``) open in the current code; new migrations run once, in one
transaction, after a backup of the database; a home from a newer mlbox is refused."""

from __future__ import annotations

import sqlite3
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.store.db import Database
from mlbox.store.migrations import Migrations, execute_script
from tests.helpers import run_main

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("home-*.tar.gz"))


def _unpack(archive: Path, where: Path) -> Path:
    home = where / "home"
    with tarfile.open(archive) as tar:
        tar.extractall(home, filter="data")
    return home


@pytest.fixture(params=FIXTURES, ids=[p.name for p in FIXTURES])
def old_home(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = _unpack(request.param, tmp_path)
    monkeypatch.setenv("MLBOX_HOME", str(home))
    return home


def test_there_is_a_fixture_of_this_release() -> None:
    import importlib.metadata

    release = importlib.metadata.version("mlbox")
    assert any(p.name == f"home-{release}.tar.gz" for p in FIXTURES), (
        "run python -m tests.fixtures.make_home and commit the archive"
    )


def test_an_old_home_opens_with_everything_in_it(old_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = Services.open(Settings.from_env())
    runs = s.tracking.db.query("SELECT id FROM runs WHERE name = 'first'")
    assert len(runs) == 1
    run_id = int(runs[0]["id"])
    assert s.tracking.get_run(run_id).status == "finished"
    points = s.tracking.metric_history(run_id, "loss")
    assert [p.step for p in points] == list(range(100)) and points[-1].value == pytest.approx(0.01)
    (art,) = s.tracking.list_artifacts(run_id)
    assert s.tracking.artifacts.read_bytes(art.sha256) == b"the fixture run's artifact\n"
    model = s.registry.load("doubler@champion")
    assert np.allclose(np.asarray(model.predict(np.arange(3.0))), [0, 2, 4])
    assert [(j.spec.name, j.state) for j in s.scheduler.list_jobs()] == [("fixture-job", "queued")]
    code, out, err = run_main(capsys, "doctor")
    assert code == 0, out + err
    # migrations of this release newer than the fixture ran after one copy of the database
    copies = list((old_home / "backups").iterdir()) if (old_home / "backups").exists() else []
    assert len(copies) <= 1, copies


def test_a_new_migration_runs_once_in_one_transaction_after_a_backup(old_home: Path) -> None:
    db = Database(old_home / "mlbox.db")
    runs_before = db.query("SELECT count(*) AS n FROM runs")[0]["n"]
    probe = Migrations("upgrade_probe")

    @probe
    def m0001_probe(conn: sqlite3.Connection) -> None:
        execute_script(conn, "CREATE TABLE probe (x INTEGER);\nINSERT INTO probe VALUES (1);\n")

    assert probe.apply(db) == ["m0001_probe"]
    assert probe.apply(db) == [], "applied once"
    Services.open(Settings.from_env())  # the release's own sets: applied now if the fixture predates them
    assert probe.apply(db) == []
    assert db.query("SELECT count(*) AS n FROM probe")[0]["n"] == 1
    # one copy per process, before the first migration it applies (not again for the release's
    # own sets that Services.open applied after it, when the fixture predates some of them)
    (snapshot,) = (old_home / "backups").iterdir()
    assert "before-upgrade_probe" in snapshot.name and oct(snapshot.stat().st_mode & 0o777) == "0o600"
    conn = sqlite3.connect(snapshot)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == runs_before
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "probe" not in tables, "the backup is the database before the migration"
    finally:
        conn.close()


def test_a_failing_migration_changes_nothing(old_home: Path) -> None:
    db = Database(old_home / "mlbox.db")
    broken = Migrations("upgrade_broken")

    @broken
    def m0001_fine(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE fine (x INTEGER)")
        conn.execute("UPDATE runs SET name = 'renamed'")

    @broken
    def m0002_fails(conn: sqlite3.Connection) -> None:
        raise RuntimeError("this release's migration is wrong")

    with pytest.raises(RuntimeError):
        broken.apply(db)
    assert not db.query("SELECT name FROM sqlite_master WHERE name = 'fine'")
    assert db.query("SELECT name FROM runs")[0]["name"] == "first"
    assert not db.query("SELECT 1 FROM _migrations WHERE migration_set = 'upgrade_broken'")
    assert len(list((old_home / "backups").iterdir())) == 1, "the backup was taken before it failed"


def test_a_home_from_a_newer_mlbox_is_refused_untouched(
    old_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = sqlite3.connect(old_home / "mlbox.db")
    conn.execute(
        "INSERT INTO _migrations VALUES ('tracking', 'm9999_from_the_future', ?, '99.0.0')", (time.time(),)
    )
    conn.commit()
    conn.close()
    before = (old_home / "mlbox.db").read_bytes()
    code, _out, err = run_main(capsys, "runs", "ls")
    assert code == 2
    assert "written by mlbox 99.0.0" in err and "upgrade mlbox to 99.0.0" in err
    assert err.count("\n") == 1
    assert (old_home / "mlbox.db").read_bytes() == before
    assert not (old_home / "backups").exists()
