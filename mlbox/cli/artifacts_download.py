"""Downloading a run's artifacts to the user's disk: where each goes, written verified.

Each file is written to a temporary beside its target while its sha256 is
computed, compared with the recorded one, then renamed into place: a cut
download or a damaged object leaves no half file under a real name. Every
target is checked to lie inside the destination before anything is written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import click

from mlbox.tracking.schemas import ArtifactInfo


@dataclass(frozen=True)
class Target:
    info: ArtifactInfo
    target: Path


def plan(items: Sequence[ArtifactInfo], prefix: str, dest: str) -> list[Target]:
    """Where each artifact goes. One file named by ``prefix`` goes to ``dest`` (a file, or into
    ``dest`` when it is a folder); a folder's files keep their paths under ``dest``."""
    root = Path(dest)
    prefix = prefix.strip("/")
    single = len(items) == 1 and items[0].path == prefix and prefix != ""
    if single:
        name = PurePosixPath(items[0].path).name
        target = root / name if root.is_dir() else root
        return [Target(items[0], target)]
    if root.exists() and not root.is_dir():
        raise click.BadParameter(f"{dest!r} is a file; give a folder for several artifacts", param_hint="-o")
    base = root.resolve()
    targets = []
    for info in items:
        target = (root / info.path).resolve()
        if not target.is_relative_to(base):  # recorded paths are clean; never trust that alone
            raise click.BadParameter(f"artifact {info.path!r} would land outside {dest!r}", param_hint="PATH")
        targets.append(Target(info, target))
    return targets


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write(
    targets: Sequence[Target], read: Callable[[str], Iterable[bytes]]
) -> tuple[list[Target], list[Target]]:
    """Write every target; returns (written, kept: already there with the same content).

    A target that exists with other content (or is a folder) stops the whole
    download before anything is written.
    """
    kept, todo = [], []
    for t in targets:
        if t.target.is_dir():
            raise click.BadParameter(f"{t.target} is a folder", param_hint="-o")
        if t.target.exists():
            if _sha256(t.target) != t.info.sha256:
                raise click.BadParameter(
                    f"{t.target} exists with other content; remove it or choose another -o", param_hint="-o"
                )
            kept.append(t)
        else:
            todo.append(t)
    for t in todo:
        t.target.parent.mkdir(parents=True, exist_ok=True)
        tmp = t.target.with_name(f".{t.target.name}.{os.getpid()}.part")
        digest = hashlib.sha256()
        try:
            with tmp.open("wb") as f:
                for chunk in read(t.info.path):
                    digest.update(chunk)
                    f.write(chunk)
            if digest.hexdigest() != t.info.sha256:
                raise click.ClickException(f"artifact {t.info.path!r} does not match its sha256; not written")
            os.replace(tmp, t.target)
        finally:
            tmp.unlink(missing_ok=True)
    return todo, kept
