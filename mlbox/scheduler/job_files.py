"""What a job on a Ray node stores in the appliance: its run's artifacts and its checkpoints.

The API hands uploads here as temporary files already written (streamed, so a large
checkpoint never sits in memory). A checkpoint goes to the job's checkpoint folder,
the one every attempt of the job reads, local or on Ray, after its bytes were checked
against the sha256 its name carries (`mlbox.checkpoint.publish`); an artifact goes to
the content-addressed artifact store under the job's run. Nothing here trusts a path
from the caller: checkpoint names are parsed (`mlbox.checkpoint.parse_name`) and
artifact paths cleaned by the tracking service.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from mlbox import checkpoint
from mlbox.store import private
from mlbox.store.artifacts import clean_relpath
from mlbox.store.errors import InvalidInput, NotFound
from mlbox.tracking.schemas import ArtifactInfo

if TYPE_CHECKING:
    from mlbox.scheduler.service import SchedulerService


class JobFiles:
    def __init__(self, service: SchedulerService) -> None:
        self.service = service

    def _run(self, job_id: int) -> int:
        run_id = self.service.get(job_id).run_id
        if run_id is None:
            raise NotFound(f"job {job_id} has not started, so it has no run yet", field="job_id")
        return run_id

    @staticmethod
    def close_upload(f: IO[bytes]) -> None:
        """The upload's bytes are on disk (fsynced) before anything publishes them."""
        with f:
            f.flush()
            os.fsync(f.fileno())

    # -- artifacts -------------------------------------------------------------

    def artifact_upload(self, job_id: int) -> tuple[IO[bytes], Path]:
        """A private temporary file for an upload to the job's run (`log_artifact` takes it)."""
        self.service.get(job_id)
        folder = self.service.job_dir(job_id) / "uploads"
        private.make_dirs(folder)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        return open(fd, "wb"), Path(name)

    def log_artifact(self, job_id: int, path: str, upload: Path) -> ArtifactInfo:
        """Store the uploaded bytes as artifact ``path`` of the job's run; the upload is removed."""
        try:
            rel = PurePosixPath(clean_relpath(path.strip("/")))  # no NUL, no '..', not absolute
            folder = Path(tempfile.mkdtemp(dir=upload.parent, prefix=".tmp-"))
            try:
                named = folder / rel.name
                upload.rename(named)
                parent = str(rel.parent) if str(rel.parent) != "." else None
                (info,) = self.service.tracking.log_artifact(self._run(job_id), named, parent)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            return info
        finally:
            upload.unlink(missing_ok=True)

    # -- checkpoints -----------------------------------------------------------

    def checkpoints(self, job_id: int) -> list[str]:
        """The job's checkpoints, oldest step first (the last is the one to resume from)."""
        self.service.get(job_id)
        return checkpoint.listing(self.service.checkpoint_dir(job_id))

    def checkpoint_path(self, job_id: int, name: str) -> Path:
        checkpoint.parse_name(name)
        path = self.service.checkpoint_dir(job_id) / name
        if name not in self.checkpoints(job_id):
            raise NotFound(f"job {job_id} has no checkpoint {name!r}", field="name")
        return path

    def checkpoint_upload(self, job_id: int, name: str) -> tuple[IO[bytes], Path]:
        """A temporary file in the job's checkpoint folder for checkpoint ``name`` (checked first)."""
        checkpoint.parse_name(name)
        self.service.get(job_id)
        return checkpoint.incoming(self.service.checkpoint_dir(job_id))

    def publish_checkpoint(self, job_id: int, name: str, upload: Path, keep: int) -> str:
        """Publish the whole upload as checkpoint ``name`` once its bytes hash to the name's
        sha256 (else a 400 naming ``name``, and nothing is published)."""
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            upload.unlink(missing_ok=True)
            raise InvalidInput(f"keep must be a whole number >= 1; got {keep!r}", field="keep")
        step, digest, kind = checkpoint.parse_name(name)
        folder = self.service.checkpoint_dir(job_id)
        return checkpoint.publish(folder, upload, step, kind, keep=keep, digest=digest).name
