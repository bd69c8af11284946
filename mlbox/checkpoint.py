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
or ``./checkpoints`` is used. A job on a Ray node has no such folder: its
checkpoints go to the job's folder in the appliance's store through the HTTP API
(`mlbox.remote`; verified by the appliance before they are published), so a
retried attempt resumes from them on any node.

Loading never trusts the folder blindly. The file's sha256 is part of its name
(``step-000000000012.<sha256>.pt``, set in the same rename that publishes it),
and `load_latest` checks it before anything is deserialized: a truncated,
corrupted or swapped file is refused (`CorruptCheckpoint`), not unpickled. A
torch checkpoint is read with ``weights_only=True`` (tensors, containers,
numbers) and only falls back to full unpickling for this verified file of
ours; a pickle checkpoint is unpickled only once verified. A checkpoint
without a digest (written before digests existed) loads only as torch
weights; a legacy pickle is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, NamedTuple

from mlbox import remote
from mlbox.store import tempfiles
from mlbox.store.errors import InvalidInput, MlboxError

ENV = "MLBOX_CHECKPOINT_DIR"
DEFAULT_KEEP = 3
_NAME = re.compile(r"^step-(\d{12})(?:\.([0-9a-f]{64}))?(\.pt|\.pkl|--.+)$")


class CorruptCheckpoint(MlboxError):
    """A checkpoint whose bytes do not match the digest it was published with."""

    http_status = 409


class _Entry(NamedTuple):
    step: int
    path: Path
    digest: str | None
    kind: str
    """``.pt``, ``.pkl`` or ``--<name>`` (a copied file)."""


class Checkpoint(NamedTuple):
    step: int
    obj: Any
    """The saved object, or the stored file's `Path` when a path was saved."""
    path: Path


def checkpoint_dir(directory: str | Path | None = None) -> Path:
    if directory is not None:
        return Path(directory)
    return Path(os.environ.get(ENV) or Path.cwd() / "checkpoints")


def _entries(folder: Path) -> list[_Entry]:
    found = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    for name in names:
        m = _NAME.match(name)
        if m:
            found.append(_Entry(int(m.group(1)), folder / name, m.group(2), m.group(3)))
    return sorted(found)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def parse_name(name: str) -> tuple[int, str, str]:
    """(step, sha256, kind) of a published checkpoint's file name; InvalidInput naming ``name``
    for anything else (the API takes uploads by name: no path, no name without its digest)."""
    m = _NAME.match(name)
    if m is None or m.group(2) is None or "/" in name or name.startswith("."):
        raise InvalidInput(
            f"{name!r} is not a checkpoint name (step-<12 digits>.<sha256>.pt|.pkl|--<file>)", field="name"
        )
    return int(m.group(1)), m.group(2), m.group(3)


def incoming(folder: Path) -> tuple[IO[bytes], Path]:
    """A private temporary file in ``folder`` for a checkpoint being written (the appliance
    removes it should the writer die); `publish` it once whole."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / tempfiles.temp_name(".tmp-")
    return os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb"), tmp


def publish(folder: Path, tmp: Path, step: int, kind: str, *, keep: int, digest: str | None = None) -> Path:
    """Rename a whole, fsynced temporary file to checkpoint ``step`` (its sha256 in the name, in
    the same rename), replace an older one of the step and keep the newest ``keep``. ``digest``:
    what the bytes must hash to (an upload), else it is computed."""
    try:
        actual = _sha256(tmp)
        if digest is not None and actual != digest:
            raise InvalidInput(
                f"the checkpoint's bytes have sha256 {actual}, not the {digest} its name says", field="name"
            )
        final = folder / f"step-{step:012d}.{actual}{kind}"
        for other in _entries(folder):  # one checkpoint per step: a re-save replaces it
            if other.step == step and other.path != final:
                other.path.unlink(missing_ok=True)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(folder)
    for old in _entries(folder)[:-keep]:
        old.path.unlink(missing_ok=True)
    return final


def listing(folder: Path) -> list[str]:
    """The published checkpoints' names, oldest step first."""
    return [e.path.name for e in _entries(folder)]


def _check(step: int, keep: int) -> None:
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 10**12:
        raise InvalidInput(f"step must be a whole number >= 0; got {step!r}", field="step")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise InvalidInput(f"keep must be a whole number >= 1; got {keep!r}", field="keep")


def _write(obj: Any, folder: Path) -> tuple[Path, str]:
    """``obj`` written whole (fsynced) to a temporary file in ``folder``; its path and kind."""
    if isinstance(obj, (str, Path)) and Path(obj).is_file():
        source: Path | None = Path(obj)
        kind = f"--{Path(obj).name}"
    else:
        source = None
        kind = ".pt" if "torch" in sys.modules else ".pkl"
    f, tmp = incoming(folder)
    try:
        with f:
            if source is not None:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, f, 1 << 20)
            elif kind == ".pt":
                import torch

                torch.save(obj, f)
            else:
                pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, kind


def _api(directory: str | Path | None) -> remote.JobApi | None:
    """A Ray job's API (no home, no checkpoint folder: `mlbox.remote`), else None."""
    if directory is not None or os.environ.get(ENV):
        return None
    return remote.from_env()


def save(obj: Any, step: int, *, keep: int = DEFAULT_KEEP, directory: str | Path | None = None) -> Path:
    """Store ``obj`` (or copy the file at a path) as checkpoint ``step``; returns where it went
    (in a Ray job: the name it has in the appliance's store, where it was uploaded)."""
    _check(step, keep)
    api = _api(directory)
    if api is not None:
        with tempfile.TemporaryDirectory(prefix="mlbox-checkpoint-") as scratch:
            tmp, kind = _write(obj, Path(scratch))
            name = f"step-{step:012d}.{_sha256(tmp)}{kind}"
            api.put_file(f"/api/v1/jobs/{api.job_id}/checkpoints/{name}", tmp, {"keep": str(keep)})
        return Path(name)
    folder = checkpoint_dir(directory)
    tmp, kind = _write(obj, folder)
    return publish(folder, tmp, step, kind, keep=keep)


def load_latest(directory: str | Path | None = None) -> Checkpoint | None:
    """The newest checkpoint, or None when there is none yet; `CorruptCheckpoint` when its bytes
    are not what was saved (nothing of it is deserialized then). In a Ray job it is downloaded
    from the appliance's store into a temporary folder and checked the same way."""
    api = _api(directory)
    if api is not None:
        return _load_remote(api)
    entries = _entries(checkpoint_dir(directory))
    return _load(entries[-1]) if entries else None


def _load_remote(api: remote.JobApi) -> Checkpoint | None:
    names = json.loads(api.call("GET", f"/api/v1/jobs/{api.job_id}/checkpoints"))
    if not names:
        return None
    name = str(names[-1])
    folder = Path(tempfile.mkdtemp(prefix=f"mlbox-job-{api.job_id}-checkpoint-"))
    data = api.call("GET", f"/api/v1/jobs/{api.job_id}/checkpoints/{name}")
    with open(folder / name, "wb") as f:
        f.write(data)
    entries = _entries(folder)
    if not entries:
        raise CorruptCheckpoint(f"the appliance answered {name!r}, not a checkpoint name", field="checkpoint")
    return _load(entries[-1])


def _load(entry: _Entry) -> Checkpoint:
    if entry.digest is not None and _sha256(entry.path) != entry.digest:
        raise CorruptCheckpoint(
            f"checkpoint {entry.path} does not match the sha256 it was saved with; "
            "delete it to resume from the one before",
            field="checkpoint",
        )
    if entry.kind == ".pt":
        return Checkpoint(entry.step, _torch_load(entry.path, verified=entry.digest is not None), entry.path)
    if entry.kind == ".pkl":
        if entry.digest is None:
            raise CorruptCheckpoint(
                f"checkpoint {entry.path} has no sha256 in its name, so it is not unpickled; "
                "save it again with this mlbox",
                field="checkpoint",
            )
        with open(entry.path, "rb") as f:
            return Checkpoint(entry.step, pickle.load(f), entry.path)
    return Checkpoint(entry.step, entry.path, entry.path)


def _torch_load(path: Path, *, verified: bool) -> Any:
    """Tensors and plain containers with ``weights_only``; a verified file of ours in full."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not verified:
            raise CorruptCheckpoint(
                f"checkpoint {path} holds objects beyond tensors and has no sha256 to verify; "
                "save it again with this mlbox",
                field="checkpoint",
            ) from None
        return torch.load(path, map_location="cpu", weights_only=False)
