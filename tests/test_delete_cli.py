"""Deleting from the shell: ``runs delete/restore``, ``experiments delete/restore``, ``models
delete`` and ``gc``, in process over a home under tmp_path; without ``--yes`` a command asks on
a terminal (a real pty) and refuses with exit 2 when stdin is not one."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import time

import pytest

from mlbox.services import Services
from tests.helpers import MLBOX, ok, run_main
from tests.models import Doubler


@pytest.fixture
def run_ids(services: Services) -> list[int]:
    t = services.tracking
    ids = [t.create_run("exp", f"r{i}").id for i in range(3)]
    for i in ids:
        t.end_run(i)
    t.log_artifact_bytes(ids[0], "w.bin", b"w" * 2048)
    return ids


def test_runs_delete_ls_and_restore(capsys: pytest.CaptureFixture[str], run_ids: list[int]) -> None:
    a, b, _ = run_ids
    code, out, err = run_main(capsys, "runs", "delete", str(a))
    assert (code, out) == (2, "")
    assert err.strip().endswith("not confirmed (stdin is not a terminal); pass --yes")
    out = ok(capsys, "runs", "delete", str(a), str(b), "--yes")
    assert out.splitlines()[0] == (
        f"deleted run {a} (restorable for 30 days, until mlbox gc purges it: mlbox runs restore {a})"
    )
    listed = ok(capsys, "runs", "ls")
    assert [line.split()[0] for line in listed.splitlines()[1:-1]] == [str(run_ids[2])]
    deleted = ok(capsys, "runs", "ls", "--deleted")
    assert {line.split()[0] for line in deleted.splitlines()[1:-1]} == {str(a), str(b)}
    assert all(line.split()[3] == "deleted" for line in deleted.splitlines()[1:-1])
    assert len(ok(capsys, "runs", "ls", "--all").splitlines()) == 5
    code, _, err = run_main(capsys, "runs", "ls", "--all", "--deleted")
    assert code == 2 and "--deleted" in err
    assert "deleted " in ok(capsys, "runs", "show", str(a))
    assert ok(capsys, "runs", "restore", str(a)) == f"restored run {a}\n"


def test_refusals_name_the_dependent(
    capsys: pytest.CaptureFixture[str], services: Services, run_ids: list[int]
) -> None:
    services.registry.register("m", model=Doubler(), run_id=run_ids[1])
    code, _, err = run_main(capsys, "runs", "delete", str(run_ids[1]), "--yes")
    assert code == 2
    assert (
        err
        == f"mlbox: error: cannot delete run {run_ids[1]}: model 'm' version 1 was registered from run {run_ids[1]}\n"
    )
    code, _, err = run_main(capsys, "experiments", "delete", "exp", "--yes")
    assert code == 2 and "cannot delete experiment 'exp': model 'm' version 1" in err
    services.registry.set_alias("m", "champion", 1)
    code, _, err = run_main(capsys, "models", "delete", "m", "1", "--yes")
    assert code == 2 and "alias m@champion points to version 1" in err
    code, _, err = run_main(capsys, "models", "delete", "m", "--yes")
    assert code == 2 and "aliases still point to it" in err
    services.registry.delete_alias("m", "champion")
    assert ok(capsys, "models", "delete", "m", "1", "--yes") == "deleted model 'm' version 1\n"
    assert ok(capsys, "models", "delete", "m", "--yes") == "deleted model 'm' (0 versions)\n"
    assert ok(capsys, "experiments", "delete", "exp", "--yes").startswith("deleted experiment 'exp'")
    assert "exp" in ok(capsys, "experiments", "ls", "--deleted")
    assert "no experiments yet" in ok(capsys, "experiments", "ls")
    assert ok(capsys, "experiments", "restore", "exp") == "restored experiment 'exp' (3 runs)\n"


def test_gc_reports_what_it_purges_and_frees(
    capsys: pytest.CaptureFixture[str], services: Services, run_ids: list[int]
) -> None:
    services.tracking.delete_run(run_ids[0], now=time.time() - 40 * 86_400)
    sha = services.tracking.list_artifacts(run_ids[0])[0].sha256
    old = time.time() - 2 * 3600
    os.utime(services.tracking.artifacts.root / "objects" / sha[:2] / sha[2:], (old, old))
    dry = json.loads(ok(capsys, "gc", "--dry-run", "--json"))
    assert (dry["purged_runs"], dry["objects_removed"], dry["freed_bytes"]) == ([run_ids[0]], 1, 2048)
    out = ok(capsys, "gc", "--older-than", "30d")
    assert out.splitlines() == [
        "purged 1 runs and 0 experiments deleted more than 30 days ago",
        "removed 1 artifact objects, 2.0 KiB freed (0 referenced, 0 unreferenced but recent)",
    ]
    assert not services.tracking.artifacts.exists(sha)
    code, _, err = run_main(capsys, "gc", "--older-than", "soon")
    assert code == 2 and "--older-than" in err


def test_a_terminal_is_asked(services: Services, run_ids: list[int], subprocess_env: dict[str, str]) -> None:
    """A real pty: the question is shown, and ``y`` deletes."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(MLBOX), "runs", "delete", str(run_ids[2])],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=subprocess_env,
        close_fds=True,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    while b"[y/N]" not in seen and time.monotonic() < deadline:
        seen += os.read(leader, 1024)
    assert f"delete run {run_ids[2]} (r2)? [y/N]".encode() in seen
    os.write(leader, b"y\n")
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    assert services.tracking.get_run(run_ids[2]).deleted_at is not None
