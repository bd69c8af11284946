"""Value objects of the model registry, shared by the client, API, CLI and TUI."""

from __future__ import annotations

from typing import Any

import msgspec

from mlbox.registry.signature import Signature


class ModelFile(msgspec.Struct, frozen=True):
    """One file of a version: its path inside the model folder and the object it names."""

    path: str
    sha256: str
    size: int


class LineageDataset(msgspec.Struct, frozen=True):
    name: str
    context: str
    digest: str


class Lineage(msgspec.Struct, frozen=True):
    """Where a version came from, copied from the tracking service at registration.

    ``source`` says how the files arrived: ``run:<id>/<artifact path>``,
    ``object`` (saved from a model in memory) or ``file:<local path>``.
    """

    source: str
    run_id: int | None = None
    run_name: str | None = None
    experiment: str | None = None
    datasets: list[LineageDataset] = []
    git_sha: str | None = None
    git_dirty: bool | None = None


class ModelVersion(msgspec.Struct, frozen=True):
    """An immutable registered version; only the aliases pointing at it change."""

    name: str
    version: int
    flavor: str
    description: str
    created_at: float
    run_id: int | None
    signature: Signature | None
    lineage: Lineage
    manifest: dict[str, Any]
    files: list[ModelFile] = []
    aliases: list[str] = []

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


class Model(msgspec.Struct, frozen=True):
    """A named model as listed: its newest version and where its aliases point."""

    name: str
    description: str
    created_at: float
    latest_version: int | None
    version_count: int
    aliases: dict[str, int] = {}


class AliasMove(msgspec.Struct, frozen=True):
    """One alias change; ``to_version`` None means the alias was removed."""

    id: int
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    moved_at: float
    note: str
