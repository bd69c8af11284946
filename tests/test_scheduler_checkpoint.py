"""``mlbox.checkpoint`` (atomic save, keep the last K, load the latest) and ``mlbox.submit``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlbox
from mlbox import checkpoint
from mlbox.store.errors import InvalidInput


def test_save_keep_and_load_latest(tmp_path: Path) -> None:
    d = tmp_path / "ck"
    assert checkpoint.load_latest(d) is None
    for step in range(5):
        checkpoint.save({"step": step, "w": [step] * 3}, step, keep=2, directory=d)
    names = sorted(p.name for p in d.iterdir())
    assert len(names) == 2 and names[-1].startswith("step-000000000004")
    latest = checkpoint.load_latest(d)
    assert latest is not None and latest.step == 4 and latest.obj["w"] == [4, 4, 4]
    checkpoint.save({"again": True}, 4, directory=d)  # a re-save of a step replaces it
    assert checkpoint.load_latest(d).obj == {"again": True}  # type: ignore[union-attr]
    f = tmp_path / "weights.bin"
    f.write_bytes(b"\x00\x01")
    stored = checkpoint.save(f, 7, directory=d)
    got = checkpoint.load_latest(d)
    assert got is not None and got.step == 7 and got.obj == stored and stored.read_bytes() == b"\x00\x01"
    with pytest.raises(InvalidInput) as e:
        checkpoint.save({}, -1, directory=d)
    assert e.value.field == "step"


def test_env_dir_and_torch_objects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setenv("MLBOX_CHECKPOINT_DIR", str(tmp_path / "job"))
    path = checkpoint.save({"t": torch.arange(3)}, 1)
    assert path.parent == tmp_path / "job" and path.suffix == ".pt"
    got = checkpoint.load_latest()
    assert got is not None and torch.equal(got.obj["t"], torch.arange(3))


def test_a_killed_save_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    """A process killed in the middle of writing leaves only a temp file, which is never loaded."""
    d = tmp_path / "ck"
    checkpoint.save({"ok": 1}, 1, directory=d)
    code = (
        "import os, pickle, mlbox.checkpoint as c\n"
        "class Slow:\n"
        "    def __reduce__(self):\n"
        "        os.kill(os.getpid(), 9)\n"
        f"c.save({{'x': Slow()}}, 2, directory={str(d)!r})\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert r.returncode == -9
    got = checkpoint.load_latest(d)
    assert got is not None and got.step == 1 and got.obj == {"ok": 1}
    assert any(p.name.startswith(".tmp-") for p in d.iterdir())  # removed at the next appliance start


def test_submit_from_python(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLBOX_GPUS", "2")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("print('ok')\n")
    job = mlbox.submit("train.py", gpus=1, args=["--lr", "0.1"], retries=2, name="t")
    assert job.state == "queued" and job.spec.script == str(tmp_path / "train.py")
    assert job.spec.script_args == ["--lr", "0.1"] and job.spec.max_retries == 2
    fn = mlbox.submit("os.path:join", kwargs={"a": "x"})
    assert fn.spec.function == "os.path:join"
    cmd = mlbox.submit("echo 'a b'", gpus=0)
    assert cmd.spec.command == ["echo", "a b"] and cmd.spec.workdir == os.getcwd()
    assert mlbox.submit(os.path.join).spec.function == "posixpath:join"
    with pytest.raises(InvalidInput) as e:
        mlbox.submit(lambda: 1)
    assert e.value.field == "function"
    with pytest.raises(InvalidInput) as e:
        mlbox.submit("train.py", gpus=3)
    assert e.value.field == "resources.gpus"
