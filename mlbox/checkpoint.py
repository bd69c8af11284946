"""Checkpoints of a job: ``mlbox.checkpoint.save(state, step)`` and ``load_latest()``.

Inside a job they go to ``MLBOX_CHECKPOINT_DIR``, the same folder for every
attempt of the job, so an attempt started after a crash, a preemption or a
retry finds what the previous one saved::

    ckpt = mlbox.checkpoint.load_latest()
    start = 0 if ckpt is None else ckpt.step + 1
    model.load_state_dict(ckpt.obj["model"]) if ckpt else None
    for step in range(start, 1000):
        ...
        mlbox.checkpoint.save({"model": model.state_dict()}, step)

Writes are atomic (temporary file, fsync, rename, fsync of the folder): a
checkpoint is either whole or absent, never half written, so a job killed
mid-save resumes from the previous one. Objects are saved with ``torch.save``
when torch is loaded in the process, else with pickle; a path is copied.
Only the newest ``keep`` checkpoints are kept. Outside a job, ``directory=``
or ``./checkpoints`` is used.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import sys
from pathlib import Path
from typing import Any, NamedTuple

from mlbox.store.errors import InvalidInput

ENV = "MLBOX_CHECKPOINT_DIR"
DEFAULT_KEEP = 3
_NAME = re.compile(r"^step-(\d{12})(\.pt|\.pkl|--.+)$")


class Checkpoint(NamedTuple):
    step: int
    obj: Any
    """The saved object, or the stored file's `Path` when a path was saved."""
    path: Path


def checkpoint_dir(directory: str | Path | None = None) -> Path:
    if directory is not None:
        return Path(directory)
    return Path(os.environ.get(ENV) or Path.cwd() / "checkpoints")


def _entries(folder: Path) -> list[tuple[int, Path]]:
    found = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    for name in names:
        m = _NAME.match(name)
        if m:
            found.append((int(m.group(1)), folder / name))
    return sorted(found)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(obj: Any, step: int, *, keep: int = DEFAULT_KEEP, directory: str | Path | None = None) -> Path:
    """Store ``obj`` (or copy the file at a path) as checkpoint ``step``; returns where it went."""
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 10**12:
        raise InvalidInput(f"step must be a whole number >= 0; got {step!r}", field="step")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise InvalidInput(f"keep must be a whole number >= 1; got {keep!r}", field="keep")
    folder = checkpoint_dir(directory)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(obj, (str, Path)) and Path(obj).is_file():
        source = Path(obj)
        final = folder / f"step-{step:012d}--{source.name}"
    else:
        source = None
        final = folder / f"step-{step:012d}{'.pt' if 'torch' in sys.modules else '.pkl'}"
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            if source is not None:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, f, 1 << 20)
            elif final.suffix == ".pt":
                import torch

                torch.save(obj, f)
            else:
                pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        for s, other in _entries(folder):  # one checkpoint per step: a re-save replaces it
            if s == step and other != final:
                other.unlink(missing_ok=True)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(folder)
    for _, old in _entries(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return final


def load_latest(directory: str | Path | None = None) -> Checkpoint | None:
    """The newest checkpoint, or None when there is none yet."""
    entries = _entries(checkpoint_dir(directory))
    if not entries:
        return None
    step, path = entries[-1]
    if path.suffix == ".pt" and path.name.startswith(f"step-{step:012d}.pt"):
        import torch

        # Our own file from this job's folder: full objects, not only tensors.
        return Checkpoint(step, torch.load(path, map_location="cpu", weights_only=False), path)
    if path.name.endswith(".pkl") and path.name == f"step-{step:012d}.pkl":
        with open(path, "rb") as f:
            return Checkpoint(step, pickle.load(f), path)
    return Checkpoint(step, path, path)
