"""A job's own files over HTTP: what a job on a Ray node uploads with its job token.

Artifacts of the job's run and the job's checkpoints (`mlbox.scheduler.job_files`).
Uploads are streamed to a temporary file, never held in memory, and published only
whole: a checkpoint once its bytes hash to the sha256 its name carries. The admin
token may call these routes too; a job token only for its own job
(`mlbox.api.security.JOB_ROUTES`).
"""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from litestar import Controller, Request, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import File

from mlbox.api.mlflow_artifacts import MAX_UPLOAD_BYTES
from mlbox.scheduler.service import SchedulerService
from mlbox.tracking.schemas import ArtifactInfo


class JobFileController(Controller):
    path = "/api/v1/jobs/{job_id:int}"
    tags = ("jobs",)

    @put(
        "/artifacts/{path:path}",
        operation_id="uploadJobArtifact",
        status_code=200,
        summary="Store a file as an artifact of the job's run (a job on a Ray node logs so)",
        request_max_body_size=MAX_UPLOAD_BYTES,
    )
    async def upload_artifact(
        self,
        scheduler: NamedDependency[SchedulerService],
        request: Request[Any, Any, Any],
        job_id: FromPath[int],
        path: FromPath[str],
    ) -> ArtifactInfo:
        files = scheduler.files
        f, upload = await to_thread.run_sync(files.artifact_upload, job_id)
        try:
            async for chunk in request.stream():
                f.write(chunk)
        except BaseException:  # the client went away mid-upload: nothing of it stays
            f.close()
            upload.unlink(missing_ok=True)
            raise
        await to_thread.run_sync(files.close_upload, f)
        return await to_thread.run_sync(files.log_artifact, job_id, path, upload)

    @get(
        "/checkpoints", operation_id="listJobCheckpoints", sync_to_thread=True, summary="A job's checkpoints"
    )
    def list_checkpoints(
        self, scheduler: NamedDependency[SchedulerService], job_id: FromPath[int]
    ) -> list[str]:
        """Names (``step-<step>.<sha256><kind>``), oldest step first: the last is the one to resume from."""
        return scheduler.files.checkpoints(job_id)

    @get(
        "/checkpoints/{name:str}",
        operation_id="downloadJobCheckpoint",
        sync_to_thread=True,
        summary="A checkpoint's bytes (the loader checks them against the sha256 in the name)",
        media_type="application/octet-stream",
    )
    def download_checkpoint(
        self, scheduler: NamedDependency[SchedulerService], job_id: FromPath[int], name: FromPath[str]
    ) -> File:
        return File(scheduler.files.checkpoint_path(job_id, name), filename=name)

    @put(
        "/checkpoints/{name:str}",
        operation_id="uploadJobCheckpoint",
        status_code=200,
        summary="Publish a checkpoint of the job once its bytes match the sha256 in its name",
        request_max_body_size=MAX_UPLOAD_BYTES,
    )
    async def upload_checkpoint(
        self,
        scheduler: NamedDependency[SchedulerService],
        request: Request[Any, Any, Any],
        job_id: FromPath[int],
        name: FromPath[str],
        keep: Annotated[int, QueryParameter(ge=1, le=1_000_000, description="newest checkpoints kept")] = 3,
    ) -> str:
        files = scheduler.files
        f, upload = await to_thread.run_sync(files.checkpoint_upload, job_id, name)
        try:
            async for chunk in request.stream():
                f.write(chunk)
        except BaseException:  # the client went away mid-upload: nothing of it stays
            f.close()
            upload.unlink(missing_ok=True)
            raise
        await to_thread.run_sync(files.close_upload, f)
        return await to_thread.run_sync(files.publish_checkpoint, job_id, name, upload, keep)
