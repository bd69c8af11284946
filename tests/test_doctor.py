"""``mlbox doctor [--repair]`` on a deliberately damaged home: a flipped artifact byte, a deleted
object, a truncated Parquet segment, temporaries left by dead writers, a damaged database."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest

from mlbox.services import Services
from mlbox.store import tables, tempfiles
from tests.helpers import run_main


def _object(home: Path, sha: str) -> Path:
    return home / "artifacts" / "objects" / sha[:2] / sha[2:]


def _damaged_home(services: Services, home: Path) -> dict[str, object]:
    tr = services.tracking
    run = tr.create_run("doctor")
    flipped = tr.log_artifact_bytes(run.id, "model/flipped.bin", b"flipped " * 1000)
    deleted = tr.log_artifact_bytes(run.id, "model/deleted.bin", b"deleted " * 1000)
    tr.log_artifact_bytes(run.id, "model/fine.bin", b"fine " * 1000)
    seg_dir = home / "tables" / "predictions" / "m"
    good = tables.write_parquet(pa.table({"x": list(range(5000))}), seg_dir / "seg-000000.parquet")
    bad = tables.write_parquet(pa.table({"x": list(range(5000))}), seg_dir / "seg-000001.parquet")
    obj = _object(home, flipped.sha256)
    os.chmod(obj, 0o600)
    data = bytearray(obj.read_bytes())
    data[10] ^= 0xFF
    obj.write_bytes(bytes(data))
    _object(home, deleted.sha256).unlink()
    with open(bad, "r+b") as f:
        f.truncate(bad.stat().st_size // 2)
    # temporaries: of a writer that is gone (this pid, another start time), and of a live one
    dead_tmp = home / "artifacts" / "tmp" / f"{os.getpid()}-100-0123456789abcdef"
    dead_tmp.write_bytes(b"half an artifact")
    dead_parquet = seg_dir / f".tmp-{os.getpid()}-100-00aa11bb22cc33dd"
    dead_parquet.write_bytes(b"PAR1 half")
    live_tmp = home / "artifacts" / "tmp" / tempfiles.temp_name()
    live_tmp.write_bytes(b"being written")
    return {
        "flipped": flipped.sha256,
        "deleted": deleted.sha256,
        "good": good,
        "bad": bad,
        "dead_tmp": dead_tmp,
        "dead_parquet": dead_parquet,
        "live_tmp": live_tmp,
    }


def test_healthy_home_is_ok(services: Services, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = services.tracking.create_run("fine")
    services.tracking.log_artifact_bytes(run.id, "a.txt", b"a")
    code, out, err = run_main(capsys, "doctor")
    assert code == 0, out + err
    assert "healthy" in out


def test_doctor_finds_and_repairs_damage(
    services: Services, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = _damaged_home(services, home)
    flipped, deleted = str(d["flipped"]), str(d["deleted"])

    code, out, err = run_main(capsys, "doctor")
    assert code == 1
    lines = out.splitlines()

    def line(*parts: str) -> str:
        hits = [x for x in lines if all(p in x for p in parts)]
        assert len(hits) == 1, (parts, out)
        return hits[0]

    assert "not to its name" in line("object", flipped[2:], "fixable")
    assert "missing" in line("reference", f"artifacts.sha256 = {deleted}", "cannot repair")
    assert "damaged" in line("reference", f"artifacts.sha256 = {flipped}")
    line("parquet", "seg-000001.parquet", "does not read")
    line("temporary", "artifacts/tmp/" + Path(str(d["dead_tmp"])).name)
    line("temporary", Path(str(d["dead_parquet"])).name)
    assert "seg-000000" not in out and Path(str(d["live_tmp"])).name not in out
    assert "fine.bin" not in out
    assert "6 problem(s) found, 0 repaired, 6 left" in err
    # looking changes nothing
    assert Path(str(d["dead_tmp"])).exists() and Path(str(d["bad"])).exists()

    code, out, err = run_main(capsys, "doctor", "--repair")
    assert code == 1  # the references cannot be repaired: their bytes are gone
    assert "4 repaired, 2 left" in err
    assert not Path(str(d["dead_tmp"])).exists() and not Path(str(d["dead_parquet"])).exists()
    assert Path(str(d["live_tmp"])).exists(), "a live writer's temporary is never touched"
    quarantined = home / "quarantine" / "tables" / "predictions" / "m" / "seg-000001.parquet"
    assert quarantined.stat().st_size > 0, "the unreadable segment's bytes are kept"
    assert (home / "quarantine" / "artifacts" / "objects" / flipped[:2] / flipped[2:]).exists()
    assert Path(str(d["good"])).exists()
    # the prediction log reads again: the damaged segment is out of the way
    assert (
        tables.query(f"SELECT count(*) AS n FROM read_parquet('{home}/tables/predictions/**/*.parquet')")[
            "n"
        ][0]
        == 5000
    )

    # what is left: rows whose objects are gone, until the same bytes are logged again
    code, out, _err = run_main(capsys, "doctor")
    assert code == 1 and out.count("reference") == 2 and "parquet" not in out and "temporary" not in out
    run = services.tracking.create_run("again")
    services.tracking.log_artifact_bytes(run.id, "x", b"flipped " * 1000)
    services.tracking.log_artifact_bytes(run.id, "y", b"deleted " * 1000)
    code, out, _err = run_main(capsys, "doctor")
    assert code == 0, out


def test_damaged_database_is_reported_not_touched(
    services: Services, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = services.tracking.create_run("db")
    for i in range(400):
        services.tracking.log_params(run.id, {f"p{i:04d}": "v" * 200})
    services.tracking.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    services.tracking.db.close()
    db = home / "mlbox.db"
    conn = sqlite3.connect(db)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    raw = bytearray(db.read_bytes())
    at = (pages - 3) * page  # an inner page of the params table: header intact, a B-tree page scrambled
    raw[at + 8 : at + 200] = bytes(range(192))
    db.write_bytes(bytes(raw))
    before = db.read_bytes()

    code, out, _err = run_main(capsys, "doctor", "--repair")
    assert code == 1
    assert out.startswith("database"), out
    assert "cannot repair: restore a backup" in out
    assert db.read_bytes() == before, "the doctor never writes a damaged database"


def test_not_a_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLBOX_HOME", str(tmp_path / "nothing"))
    code, _out, err = run_main(capsys, "doctor")
    assert code == 2 and "not an mlbox home" in err
    assert not (tmp_path / "nothing").exists()
