"""Everything inside the home is private to its owner: files 0600 (0400 when read-only), folders 0700.

The home folder itself is 0700, but a home copied elsewhere or whose mode was loosened must not
expose the database, logs, artifacts or tables, so each writer creates what it writes private.
The test process keeps a permissive umask (022, the usual one): the modes must come from the
writers, not from the umask of whoever happens to write.
"""

from __future__ import annotations

import os
import stat
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression

import mlbox
from mlbox.scheduler.schemas import JobSpec
from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.store.tables import write_parquet


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def exposed(root: Path) -> list[str]:
    """Every path below ``root`` (``root`` included) that group or others may touch."""
    found = []
    for dirpath, dirs, files in os.walk(root):
        for name in [".", *dirs, *files]:
            path = Path(dirpath) / name
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                continue
            if mode & 0o077:
                found.append(f"{path.relative_to(root)} {stat.filemode(mode)}")
    return sorted(set(found))


def test_a_demo_like_sequence_leaves_nothing_group_or_other_accessible(
    home: Path, tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLBOX_SCHEDULER_CPUS", "2")
    monkeypatch.setenv("MLBOX_GPUS", "0")
    services = Services.open(Settings.from_env())
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(4096))
    x = np.random.default_rng(0).normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    with mlbox.start_run(experiment="modes") as run:
        mlbox.log_param("c", 1.0)
        mlbox.log_metric("loss", 0.5)
        mlbox.log_artifact(str(src))
        mlbox.log_model(LogisticRegression().fit(x, y), "model", example_input=x[:2])
    services.registry.register("lr", run_id=run.id, artifact_path="model")
    services.registry.load("lr/1")
    # as the prediction log writes its segments: folders made on the way to the file
    write_parquet(pl.DataFrame({"a": [1, 2]}), services.home.tables / "predictions" / "lr" / "seg-1.parquet")
    code = textwrap.dedent(
        """
        import mlbox
        from mlbox import checkpoint
        print("hello from the job")
        mlbox.start_run()
        mlbox.log_metric("m", 1.0)
        checkpoint.save({"step": 1}, 1)
        """
    )
    sched = services.scheduler
    job = sched.submit(JobSpec(name="modes", command=[sys.executable, "-c", code], env_policy="appliance"))
    deadline = time.monotonic() + 60
    while not sched.get(job.id).terminal:
        assert time.monotonic() < deadline, "the job did not finish"
        sched.reconcile_once()
        time.sleep(0.05)
    assert sched.get(job.id).state == "succeeded", sched.log_path(job.id).read_text()
    sched.close(kill=True)
    assert "hello from the job" in sched.log_path(job.id).read_text()
    assert list(Path(sched.get(job.id).checkpoint_dir or "").glob("step-*"))
    assert exposed(home) == [], "\n".join(exposed(home))
