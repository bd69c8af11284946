"""Disk full: the home on a small filesystem (a tmpfs of 16 MiB, mounted in a private mount
namespace so nothing outlives the test) filled to the last byte. Logging metrics, writing an
artifact, registering a model and writing Parquet each fail with an error that says the disk is
full; the database stays intact, no partial object or file is visible, the doctor finds nothing,
a loaded model keeps scoring and the prediction log's writer survives (rows logged while the
disk is full are lost: the writer retries new rows only); once space is freed every one of them
works again.

Needs root (``unshare -m`` and ``mount -t tmpfs``); skipped with the reason where they are refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCENARIO = textwrap.dedent(
    """
    import json, os, sqlite3, sys, time
    import numpy as np
    from array import array
    from pathlib import Path
    import pyarrow as pa
    from mlbox.doctor import run_doctor
    from mlbox.services import Services
    from mlbox.settings import Settings
    from mlbox.serving.predlog import PredictionLog
    from mlbox.store import tables
    from mlbox.store.errors import storage_full
    from mlbox.tracking.series import Chunk
    from tests.models import Doubler

    home = Path(os.environ["MLBOX_HOME"])
    s = Services.open(Settings.from_env())
    run = s.tracking.create_run("full")
    out = {}

    def chunk(start, n=2000):
        steps = array("q", range(start, start + n))
        return {"loss": Chunk(steps, array("d", [1.0] * n), array("d", [float(i) for i in steps]))}

    def attempt(name, fn):
        try:
            fn()
            out[name] = "ok"
        except Exception as exc:
            out[name] = f"{type(exc).__name__}: {exc}"
            out[name + " is storage full"] = storage_full(exc) is not None

    def all_ops(tag, step):
        attempt(f"metrics {tag}", lambda: s.tracking.log_metrics(run.id, chunk(step)))
        attempt(f"artifact {tag}", lambda: s.tracking.log_artifact_bytes(run.id, f"{tag}.bin", os.urandom(2 << 20)))
        attempt(f"register {tag}", lambda: s.registry.register("doubler", model=Doubler(2.0 + step)))
        attempt(
            f"parquet {tag}",
            lambda: tables.write_parquet(pa.table({"x": os.urandom(1 << 20)}), home / "tables" / "t" / f"{tag}.parquet"),
        )

    all_ops("before", 0)
    model = s.registry.load("doubler/1")  # served from memory, as the appliance serves it
    plog = PredictionLog(home / "tables" / "predictions", flush_s=0.05)
    plog.warm()
    objects_before = sorted(str(p) for p in (home / "artifacts" / "objects").rglob("*") if p.is_file())
    filler = home.parent / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\\0" * (64 << 10))
                f.flush()
        except OSError:
            pass
    try:
        with open(filler, "ab") as f:  # the last few bytes too
            while True:
                f.write(b"\\0")
                f.flush()
    except OSError:
        pass
    all_ops("full", 10_000)
    out["scoring while full"] = np.asarray(model.predict(np.arange(3.0))).tolist()
    plog.append(("r-full", "doubler", 1, time.time(), 1.0, False, [[1.0]], [[2.0]]))
    time.sleep(1.0)  # the writer tries, fails on the full disk, and carries on
    out["objects unchanged"] = objects_before == sorted(
        str(p) for p in (home / "artifacts" / "objects").rglob("*") if p.is_file()
    )
    out["full parquet visible"] = (home / "tables" / "t" / "full.parquet").exists()
    out["temporaries"] = sorted(
        str(p.relative_to(home)) for p in home.rglob("*")
        if p.name.startswith(".tmp-") or p.parent.name == "tmp" or "staging/" in str(p.relative_to(home))
    )
    conn = sqlite3.connect(home / "mlbox.db")
    out["integrity"] = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    out["versions while full"] = [v.version for v in s.registry.list_versions("doubler")]
    out["doctor while full"] = [f"{f.kind} {f.where}: {f.problem}" for f in run_doctor(home)]
    filler.unlink()
    all_ops("after", 20_000)
    plog.append(("r-after", "doubler", 1, time.time(), 1.0, False, [[1.0]], [[2.0]]))
    plog.close()
    logged = tables.query(f"SELECT request_id FROM read_parquet('{home}/tables/predictions/**/rows-*.parquet')")
    out["logged after"] = sorted(logged["request_id"].to_list())
    out["doctor after"] = [f"{f.kind} {f.where}: {f.problem}" for f in run_doctor(home)]
    out["versions after"] = [v.version for v in s.registry.list_versions("doubler")]
    out["steps"] = len(s.tracking.metric_history(run.id, "loss"))
    print(json.dumps(out))
    """
)


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root to mount a small filesystem (tmpfs)"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt && umount /mnt"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"cannot mount a tmpfs in a private mount namespace here: {probe.stderr.strip()}"
    return None


def test_a_full_disk_fails_writes_clearly_and_loses_nothing(tmp_path: Path) -> None:
    why = _why_not()
    if why:
        pytest.skip(why)
    small = tmp_path / "small"
    small.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBOX_")}
    env.update(MLBOX_HOME=str(small / "home"), PYTHONPATH=str(ROOT))
    mount = 'mount -t tmpfs -o size=16m tmpfs "$0" && exec "$1" -c "$2"'
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", mount, str(small), sys.executable, SCENARIO],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(out, indent=1))
    for op in ("metrics", "artifact", "register", "parquet"):
        assert out[f"{op} before"] == "ok", out
        full = out[f"{op} full"]
        assert "No space left on device" in full or "database or disk is full" in full, (op, full)
        assert out[f"{op} full is storage full"], (op, full)  # a 507 over HTTP, exit 2 in the CLI
        assert out[f"{op} after"] == "ok", (op, out[f"{op} after"])
    assert out["objects unchanged"], "no partial object appears in the store"
    assert not out["full parquet visible"]
    assert out["temporaries"] == [], out["temporaries"]
    assert out["integrity"] == "ok"
    assert out["versions while full"] == [1]
    assert out["doctor while full"] == []
    assert out["versions after"] == [1, 2]
    assert out["steps"] == 4000
    assert out["scoring while full"] == [0.0, 2.0, 4.0], "a loaded model keeps scoring"
    assert "r-after" in out["logged after"], "the prediction log writer survived the full disk"
    assert out["doctor after"] == []
    assert not any(small.iterdir()), "the tmpfs lived only in the test's mount namespace"


def test_a_full_disk_is_told_apart_from_other_errors() -> None:
    """What the API answers 507 and the CLI one line for: SQLite's full database, ENOSPC, EDQUOT."""
    import errno
    import sqlite3

    from mlbox.store.errors import StorageFull, storage_full

    for exc in (
        sqlite3.OperationalError("database or disk is full"),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
    ):
        full = storage_full(exc, "/home/x/mlbox.db")
        assert isinstance(full, StorageFull) and full.http_status == 507
        assert "/home/x/mlbox.db" in full.message and "free some space" in full.message
    for other in (
        sqlite3.OperationalError("database is locked"),
        OSError(errno.EACCES, "denied"),
        ValueError(),
    ):
        assert storage_full(other) is None
