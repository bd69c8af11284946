"""Checkpoints are verified before anything in them is deserialized (issue 12, "No leak after a crash")."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from mlbox import checkpoint
from mlbox.checkpoint import CorruptCheckpoint


class Marker:
    """Unpickling this creates ``path``: proof that a file was deserialized."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (self.path,))


def test_saved_name_carries_the_sha256_and_loads_back(tmp_path: Path) -> None:
    path = checkpoint.save({"epoch": 3, "weights": [1.0, 2.0]}, 3, directory=tmp_path)
    assert re.fullmatch(r"step-000000000003\.[0-9a-f]{64}\.(pkl|pt)", path.name), path.name
    got = checkpoint.load_latest(tmp_path)
    assert got is not None and got.step == 3 and got.obj == {"epoch": 3, "weights": [1.0, 2.0]}


def test_a_corrupted_checkpoint_is_refused_not_unpickled(tmp_path: Path) -> None:
    path = checkpoint.save({"ok": True}, 1, directory=tmp_path)
    marker = tmp_path / "unpickled"
    # a swapped file under the published name: a payload that runs code when unpickled
    path.write_bytes(pickle.dumps(Marker(str(marker))))
    with pytest.raises(CorruptCheckpoint, match="sha256") as exc:
        checkpoint.load_latest(tmp_path)
    assert str(path) in exc.value.message
    assert not marker.exists()


def test_a_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    path = checkpoint.save(list(range(10_000)), 2, directory=tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CorruptCheckpoint):
        checkpoint.load_latest(tmp_path)


def test_a_legacy_pickle_without_digest_is_not_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    (tmp_path / "step-000000000005.pkl").write_bytes(pickle.dumps(Marker(str(marker))))
    with pytest.raises(CorruptCheckpoint, match="no sha256"):
        checkpoint.load_latest(tmp_path)
    assert not marker.exists()


def test_torch_weights_load_with_weights_only_and_objects_only_when_verified(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    state = {"w": torch.arange(4.0), "step": 7}
    checkpoint.save(state, 7, directory=tmp_path)
    got = checkpoint.load_latest(tmp_path)
    assert got is not None and got.path.suffix == ".pt"
    assert torch.equal(got.obj["w"], state["w"]) and got.obj["step"] == 7

    # a legacy torch file (no digest) with an arbitrary object in it: weights_only refuses it
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    marker = tmp_path / "unpickled-torch"
    torch.save({"evil": Marker(str(marker))}, legacy / "step-000000000009.pt")
    with pytest.raises(CorruptCheckpoint, match="beyond tensors"):
        checkpoint.load_latest(legacy)
    assert not marker.exists()
