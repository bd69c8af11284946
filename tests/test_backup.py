"""``mlbox backup`` taken while a writer process logs runs, metric points, model versions and jobs,
and ``mlbox restore`` of it into an empty home: every write acknowledged before the backup
began is there, the objects read back verified, and a non-empty home is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlbox.services import Services
from mlbox.settings import Settings
from tests.helpers import mlbox_env, run_main

WRITER = textwrap.dedent(
    """
    import json, sys, time
    from array import array
    from mlbox.services import Services
    from mlbox.settings import Settings
    from mlbox.scheduler.schemas import JobSpec
    from mlbox.tracking.series import Chunk
    from tests.models import Doubler

    s = Services.open(Settings.from_env())
    def ack(**kw):
        kw["t"] = time.time()
        print(json.dumps(kw), flush=True)
    i = 0
    while True:
        run = s.tracking.create_run("load", name=f"r{i}")
        ack(kind="run", id=run.id)
        for k in range(5):
            steps = array("q", range(k * 50, k * 50 + 50))
            s.tracking.log_metrics(run.id, {"loss": Chunk(steps, array("d", [time.time()] * 50),
                                   array("d", [float(x) for x in steps]))})
            ack(kind="points", run=run.id, last=k * 50 + 49)
        s.tracking.log_artifact_bytes(run.id, "out.txt", f"output {i}".encode() * 100)
        ack(kind="artifact", run=run.id)
        if i % 3 == 0:
            mv = s.registry.register("doubler", model=Doubler(float(i)))
            ack(kind="version", version=mv.version)
            job = s.scheduler.submit(JobSpec(name=f"job{i}", command=["true"]))
            ack(kind="job", id=job.id)
        i += 1
    """
)


def _acks(lines: list[str], before: float) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for line in lines:
        item = json.loads(line)
        if item["t"] < before:
            out.setdefault(str(item["kind"]), []).append(item)
    return out


def test_backup_under_load_restores_every_acknowledged_write(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Services.open(Settings.from_env())  # the schema, as the appliance makes it
    repo = Path(__file__).resolve().parent.parent
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER],
        env=mlbox_env(home, PYTHONPATH=str(repo)),
        stdout=subprocess.PIPE,
        text=True,
        cwd=repo,
    )
    try:
        lines: list[str] = []
        assert writer.stdout is not None
        while sum('"version"' in x for x in lines) < 2:  # the writer is well under way
            line = writer.stdout.readline()
            assert line, "the writer died"
            lines.append(line)
        started = time.time()
        dest = tmp_path / "backup"
        code, out, err = run_main(capsys, "backup", str(dest))
        assert code == 0, err
        assert "backed up" in out
        for _ in range(20):  # still writing after the backup: it never blocked the writer
            line = writer.stdout.readline()
            assert line, "the writer died"
            lines.append(line)
    finally:
        writer.kill()
        writer.wait()
    acked = _acks(lines, started)
    assert acked["run"] and acked["points"] and acked["version"] and acked["job"] and acked["artifact"]

    # the token is not in the backup, and the backup is private
    assert not (dest / "token").exists()
    assert oct(dest.stat().st_mode & 0o777) == "0o700"

    restored = tmp_path / "restored"
    monkeypatch.setenv("MLBOX_HOME", str(restored))
    code, out, err = run_main(capsys, "restore", str(dest))
    assert code == 0, err
    assert "restored" in out
    s = Services.open(Settings.from_env())
    for run in acked["run"]:
        assert s.tracking.get_run(int(str(run["id"]))).name is not None
    last: dict[int, int] = {}
    for p in acked["points"]:
        last[int(str(p["run"]))] = max(last.get(int(str(p["run"])), -1), int(str(p["last"])))
    for run_id, last_step in last.items():
        steps = [pt.step for pt in s.tracking.metric_history(run_id, "loss")]
        assert steps[: last_step + 1] == list(range(last_step + 1)), run_id
    for a in acked["artifact"]:
        (info,) = s.tracking.list_artifacts(int(str(a["run"])))
        assert s.tracking.artifacts.read_bytes(info.sha256).startswith(b"output ")  # verified on read
    versions = {v.version for v in s.registry.list_versions("doubler")}
    assert {int(str(v["version"])) for v in acked["version"]} <= versions
    for v in acked["version"]:
        s.registry.load(f"doubler/{v['version']}")
    jobs = {j.id for j in s.scheduler.list_jobs()}
    assert {int(str(j["id"])) for j in acked["job"]} <= jobs

    code, _out, err = run_main(capsys, "doctor")
    assert code == 0, err

    # a home that is not empty is refused, and left as it was
    code, _out, err = run_main(capsys, "restore", str(dest))
    assert code == 2 and "not an empty folder" in err


def test_restore_refuses_a_damaged_backup_and_writes_nothing(
    services: Services,
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = services.tracking.create_run("x")
    info = services.tracking.log_artifact_bytes(run.id, "a.bin", b"a" * 1000)
    dest = tmp_path / "b"
    code, _out, err = run_main(capsys, "backup", str(dest))
    assert code == 0, err
    code, _out, err = run_main(capsys, "backup", str(dest))
    assert code == 2 and "not an empty folder" in err

    obj = dest / "artifacts" / "objects" / info.sha256[:2] / info.sha256[2:]
    obj.chmod(0o600)
    obj.write_bytes(b"b" * 1000)
    target = tmp_path / "new"
    monkeypatch.setenv("MLBOX_HOME", str(target))
    code, _out, err = run_main(capsys, "restore", str(dest))
    assert code == 2 and "damaged" in err and info.sha256[2:] in err
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if "restoring" in p.name] == []

    code, _out, err = run_main(capsys, "restore", str(tmp_path / "nowhere"))
    assert code == 2 and "not an mlbox backup" in err
