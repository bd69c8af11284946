"""Artifacts of a run: the listing, and downloads of verified bytes.

A download never touches a path given by the caller: the logical path is
checked by `clean_relpath` (no ``..``, no absolute path, no backslash) and
looked up in the database, which maps it to a sha256 name in the
content-addressed store; the store opens that object with ``O_NOFOLLOW`` and
verifies the whole hash before the first byte goes out. Pulling the first
chunk before the response starts is what turns a tampered object into an
error JSON instead of a stream cut off halfway.
"""

from __future__ import annotations

import itertools
from pathlib import PurePosixPath
from urllib.parse import quote

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Stream

from mlbox.tracking.schemas import ArtifactInfo
from mlbox.tracking.service import TrackingService


class ArtifactController(Controller):
    path = "/api/v1/runs/{run_id:int}/artifacts"
    tags = ("artifacts",)

    @get(operation_id="listArtifacts", sync_to_thread=True, summary="A run's artifacts")
    def list_artifacts(
        self, tracking: NamedDependency[TrackingService], run_id: FromPath[int]
    ) -> list[ArtifactInfo]:
        tracking.get_run(run_id)  # an unknown run is a 404, not an empty list
        return tracking.list_artifacts(run_id)

    @get(
        "/{path:path}",
        operation_id="downloadArtifact",
        sync_to_thread=True,
        summary="Download an artifact's bytes (verified against its sha256)",
        media_type="application/octet-stream",
    )
    def download_artifact(
        self, tracking: NamedDependency[TrackingService], run_id: FromPath[int], path: FromPath[str]
    ) -> Stream:
        rel = path.removeprefix("/")  # a path parameter arrives with its leading slash
        info = tracking.artifact(run_id, rel)
        chunks = tracking.read_artifact(run_id, info.path)
        first = next(chunks, b"")  # verification happens here, before any header is sent
        filename = quote(PurePosixPath(info.path).name)
        return Stream(
            itertools.chain([first], chunks),
            media_type="application/octet-stream",
            headers={
                "Content-Length": str(info.size),
                "Content-Disposition": f"attachment; filename*=UTF-8''{filename}",
                "ETag": f'"{info.sha256}"',
                "X-Content-Type-Options": "nosniff",
            },
        )
