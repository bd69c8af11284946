"""No leak after a crash: what a writer killed midway left in the home is removed at the next start.

A real writer begins a ``log_artifact`` of a file it reads from a FIFO, so it is midway for as
long as the test likes, and is killed with SIGKILL there; a real ``mlbox up`` then starts on the
home. The temporary file of the dead writer goes; that of a writer still alive stays. Model
folders a dead process left under ``cache/models`` go the same way, and so do the temporaries
written beside their target under ``tables/`` and the jobs' folders. The decision
(`mlbox.store.tempfiles.orphans`) is tested on its own, recycled pids included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlbox.store import Home
from mlbox.store.tempfiles import Writer, is_orphan, orphans, temp_name, writer_of, writer_tag
from tests.helpers import MLBOX, mlbox_env, wait_announced

DEADLINE_S = 60.0
CHUNK = b"x" * (1 << 20)


# -- the decision ----------------------------------------------------------------------------


def test_names_record_the_writer_and_its_start_time() -> None:
    name = temp_name(".tmp-")
    writer = writer_of(name, ".tmp-")
    assert writer is not None and writer.pid == os.getpid() and writer.started is not None
    assert writer_of("123-0123456789abcdef") == Writer(123, None)  # written before start times
    assert writer_of("123-4500-0123456789abcdef") == Writer(123, 45.0)
    assert writer_of("model.pkl") is None and writer_of(".tmp-x-1", ".tmp-") is None
    assert writer_of("register-77-100-ab_9x", "register-") == Writer(77, 1.0)


def test_a_dead_or_recycled_pid_is_an_orphan_and_a_live_writer_is_not() -> None:
    started = Writer(10, 1000.0)
    assert is_orphan(started, mtime=2000.0, live_start=None)  # no process has the pid
    assert is_orphan(started, mtime=2000.0, live_start=1500.0)  # the pid now belongs to another
    assert not is_orphan(started, mtime=2000.0, live_start=1000.4)  # the writer itself
    legacy = Writer(10, None)
    assert is_orphan(legacy, mtime=900.0, live_start=1000.0)  # last written before the pid's holder began
    assert not is_orphan(legacy, mtime=1200.0, live_start=1000.0)  # may be its own


def test_orphans_chooses_among_names_and_keeps_what_it_cannot_judge() -> None:
    entries = [
        ("1-100000-aa", 5.0),  # dead
        ("2-100000-bb", 5.0),  # alive, same start
        ("3-100000-cc", 5.0),  # pid recycled
        ("4-100000-dd", 5.0),  # pid not looked up: kept
        ("notes.txt", 5.0),  # not a temporary
    ]
    starts = {1: None, 2: 1000.0, 3: 4000.0}
    assert orphans(entries, starts) == ["1-100000-aa", "3-100000-cc"]
    assert orphans([(".tmp-1-100000-aa", 1.0), (".trash-1-5", 1.0)], {1: None}, (".tmp-", ".trash-")) == [
        ".tmp-1-100000-aa",
        ".trash-1-5",
    ]


# -- a real killed writer and a real `mlbox up` ----------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return mlbox_env(tmp_path / "home")


WRITER = "import sys, mlbox; mlbox.start_run(experiment='big'); mlbox.log_artifact(sys.argv[1])"


def begin_log_artifact(
    env: dict[str, str], fifo: Path, started: list[subprocess.Popen[bytes]], tmp_dir: Path, mb: int
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """A writer midway through a ``log_artifact`` of ``mb`` MB: its pid, the FIFO's open write
    end (more bytes would continue it) and its temporary file."""
    os.mkfifo(fifo)
    before = set(tmp_dir.iterdir()) if tmp_dir.exists() else set()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(fifo)], env=env, start_new_session=True)
    started.append(proc)
    fd = os.open(fifo, os.O_WRONLY)  # returns once the writer opened the FIFO to read it
    for _ in range(mb):
        os.write(fd, CHUNK)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        new = [p for p in tmp_dir.iterdir() if p not in before] if tmp_dir.exists() else []
        if new and new[0].stat().st_size >= mb * len(CHUNK):
            return proc, fd, new[0]
        assert proc.poll() is None and time.monotonic() < deadline, "the writer never got midway"
        time.sleep(0.02)


def dead_process() -> tuple[int, int]:
    """The pid and start time (hundredths of a second) of a process that has ended."""
    import psutil

    proc = subprocess.Popen(["sleep", "30"])
    created = round(psutil.Process(proc.pid).create_time() * 100)
    proc.kill()
    proc.wait()
    return proc.pid, created


def test_mlbox_up_removes_what_killed_writers_left_and_keeps_what_live_ones_write(
    env: dict[str, str], tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    home = Home(Path(env["MLBOX_HOME"])).ensure()
    tmp_dir = home.artifacts / "tmp"
    killed, killed_fd, killed_tmp = begin_log_artifact(env, tmp_path / "a.fifo", started, tmp_dir, 24)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    os.close(killed_fd)
    assert killed_tmp.exists() and killed_tmp.stat().st_size >= 24 * len(CHUNK)  # the leak
    alive, alive_fd, alive_tmp = begin_log_artifact(env, tmp_path / "b.fifo", started, tmp_dir, 2)

    cache = home.root / "cache" / "models"
    pid, created = dead_process()
    left = [cache / f".tmp-{pid}-{created}-0a1b2c", cache / "staging" / f"register-{pid}-{created}-x_9k"]
    own = [cache / f".tmp-{writer_tag()}-0a1b2c", cache / "staging" / f"register-{writer_tag()}-y_1z"]
    for folder in (*left, *own):
        (folder / "model").mkdir(parents=True)
        (folder / "model" / "model.pkl").write_bytes(b"half a model")
        os.chmod(folder / "model" / "model.pkl", 0o400)
    # a Parquet segment (store.tables), a job's exit record (the shim, which knows no start
    # time) and a checkpoint, each cut short beside its target
    segments = home.tables / "predictions" / "digits" / "v1"
    attempt = home.root / "jobs" / "3" / "attempt-1"
    checkpoints = home.root / "jobs" / "3" / "checkpoints"
    beside = [
        segments / f".tmp-{pid}-{created}-0a1b2c",
        attempt / f".tmp-{pid}-0a1b2c3d4e5f6a7b",
        checkpoints / f".tmp-{pid}-{created}-9f8e",
    ]
    kept_beside = [
        segments / f".tmp-{writer_tag()}-0a1b2c",
        segments / "part-0.parquet",
        attempt / "exit.json",
    ]
    for path in (*beside, *kept_beside):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half written")

    up = subprocess.Popen(
        [str(MLBOX), "up", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    started.append(up)
    wait_announced(home.root, up, deadline_s=DEADLINE_S)

    assert not killed_tmp.exists(), "the killed writer's temporary file is still there"
    assert alive_tmp.exists(), "a live writer's temporary file was removed"
    assert [p.exists() for p in left] == [False, False]
    assert [p.exists() for p in own] == [True, True]
    assert [p.exists() for p in beside] == [False, False, False]
    assert [p.exists() for p in kept_beside] == [True, True, True]

    os.write(alive_fd, CHUNK)  # the live writer finishes; its artifact is stored whole
    os.close(alive_fd)
    assert alive.wait(timeout=DEADLINE_S) == 0
    assert not alive_tmp.exists()
