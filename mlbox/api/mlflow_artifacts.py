"""MLflow's artifact routes (``/api/2.0/mlflow-artifacts/artifacts/...``) over a run's artifacts.

A run's MLflow artifact URI is ``mlflow-artifacts:/<run id>``
(`mlbox.mlflow.protocol.artifact_uri`), which MLflow's client resolves to
these routes: the first path segment names the run, the rest is the logical
path inside it. Uploads land in the content-addressed store through the
tracking service like any logged file (so ``mlbox runs`` and the registry see
them); downloads are verified against their sha256 before the first byte, as
in `mlbox.api.artifacts`. No caller path ever reaches the file system:
`clean_relpath` refuses ``..`` and absolute paths, and the upload is written
to a fresh temporary folder under a name we choose.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from anyio import to_thread
from litestar import Controller, Request, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Stream

from mlbox.api.mlflow_errors import MLFLOW_EXCEPTION_HANDLERS, both
from mlbox.mlflow import protocol as p
from mlbox.store.artifacts import clean_relpath
from mlbox.store.errors import InvalidInput, NotFound
from mlbox.tracking.service import TrackingService

MAX_UPLOAD_BYTES = 4 * 1024**3
"""One artifact file: models are big; it streams to disk, never to memory."""

_ROOTS = ("/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts")


def split(path: str) -> tuple[int, str]:
    """``"<run>/<relpath>"`` as (run id, cleaned relpath; '' for the run's root)."""
    text = path.strip("/")
    head, _, rest = text.partition("/")
    run_id = p.int_id(head, "path")
    return run_id, clean_relpath(rest, field="path") if rest else ""


def children(paths: list[tuple[str, int]], prefix: str) -> list[dict[str, Any]]:
    """The direct children of folder ``prefix`` among a run's (path, size) files: MLflow lists
    one level, folders as ``is_dir`` entries, paths relative to the listed folder."""
    base = f"{prefix}/" if prefix else ""
    files: dict[str, dict[str, Any]] = {}
    for path, size in paths:
        if not path.startswith(base):
            continue
        rest = path[len(base) :]
        head, sep, _ = rest.partition("/")
        if sep:
            files.setdefault(head, {"path": head, "is_dir": True})
        else:
            files[head] = {"path": head, "is_dir": False, "file_size": size}
    return [files[k] for k in sorted(files)]


class MlflowArtifactsController(Controller):
    path = "/"
    tags = ("mlflow",)
    exception_handlers = MLFLOW_EXCEPTION_HANDLERS

    @get(list(_ROOTS), sync_to_thread=True, include_in_schema=False)
    def list_artifacts(
        self, tracking: NamedDependency[TrackingService], request: Request[Any, Any, Any]
    ) -> dict[str, Any]:
        path = request.query_params.get("path") or ""
        if not path.strip("/"):
            return {"files": []}  # the root holds runs; MLflow's client never lists it
        run_id, rel = split(path)
        files = [(a.path, a.size) for a in tracking.list_artifacts(run_id)]
        return {"files": children(files, rel)}

    @get([f"{r}/{{path:path}}" for r in _ROOTS], include_in_schema=False,
         media_type="application/octet-stream")  # fmt: skip
    async def download(self, tracking: NamedDependency[TrackingService], path: FromPath[str]) -> Stream:
        def opened() -> tuple[int, Iterator[bytes]]:
            run_id, rel = split(path)
            if not rel:
                raise InvalidInput("path names a run, not a file", field="path")
            info = tracking.artifact(run_id, rel)
            chunks = tracking.read_artifact(run_id, info.path)
            first = next(chunks, b"")  # verified before any header goes out
            return info.size, itertools.chain([first], chunks)

        size, chunks = await to_thread.run_sync(opened)
        return Stream(
            chunks,
            media_type="application/octet-stream",
            headers={"Content-Length": str(size), "X-Content-Type-Options": "nosniff"},
        )

    @put([f"{r}/{{path:path}}" for r in _ROOTS], include_in_schema=False, status_code=200,
         request_max_body_size=MAX_UPLOAD_BYTES)  # fmt: skip
    async def upload(
        self, tracking: NamedDependency[TrackingService], request: Request[Any, Any, Any], path: FromPath[str]
    ) -> dict[str, Any]:
        run_id, rel = split(path)
        if not rel:
            raise InvalidInput("path names a run, not a file", field="path")
        name = PurePosixPath(rel).name
        folder = str(PurePosixPath(rel).parent)
        with tempfile.TemporaryDirectory(prefix="mlflow-upload-") as tmp:
            named = Path(tmp) / name  # one segment of a cleaned path: stays in tmp
            with open(named, "wb") as f:
                async for chunk in request.stream():
                    f.write(chunk)
            await to_thread.run_sync(
                lambda: tracking.log_artifact(run_id, named, None if folder == "." else folder)
            )
        return {}

    @get(both("/artifacts/list"), sync_to_thread=True, include_in_schema=False)
    def list_run_artifacts(
        self, tracking: NamedDependency[TrackingService], request: Request[Any, Any, Any]
    ) -> dict[str, Any]:
        """The tracking API's own listing (``ListArtifacts``): paths from the run's root."""
        raw = request.query_params.get("run_id") or request.query_params.get("run_uuid")
        run_id = p.int_id(raw, "run_id")
        prefix = (request.query_params.get("path") or "").strip("/")
        rel = clean_relpath(prefix, field="path") if prefix else ""
        try:
            files = [(a.path, a.size) for a in tracking.list_artifacts(run_id)]
        except NotFound:
            raise NotFound(f"Run with id={run_id} not found", field="run_id") from None
        listed = children(files, rel)
        for item in listed:
            item["path"] = f"{rel}/{item['path']}" if rel else item["path"]
        return {"root_uri": p.artifact_uri(run_id), "files": listed}
