"""Value objects of the notebook service."""

from __future__ import annotations

from typing import Literal

import msgspec

NotebookState = Literal["starting", "running", "stopped", "culled", "failed"]
"""``starting``: its job is queued or its server is not answering yet; ``running``: answering;
``stopped`` (by a user, or shut down from JupyterLab), ``culled`` (idle past its limit) and
``failed`` (the server exited with an error) are final."""

NOTEBOOK_STATES: tuple[NotebookState, ...] = ("starting", "running", "stopped", "culled", "failed")
ACTIVE_STATES: tuple[NotebookState, ...] = ("starting", "running")


class Notebook(msgspec.Struct, frozen=True):
    id: int
    job_id: int
    state: NotebookState
    gpus: int
    root_dir: str
    url: str | None
    """The server's address with its token (``…/lab?token=…``), once it has bound a port."""
    idle_timeout_s: float
    created_at: float
    started_at: float | None
    last_activity: float | None
    busy: bool
    """A kernel was busy or a leased GPU was working when last looked at."""
    finished_at: float | None
    message: str | None
    """Why it is in its state: the idle reason, a cull, the job's exit."""
