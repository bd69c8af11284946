"""What the Notebooks view shows, computed from the notebook service's values: pure functions, no Textual.

A notebook's row says whether its server answers, which GPUs its job holds,
and how long it has been idle against its limit — the clock passed in, so an
idle time reads the same in a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mlbox.notebooks.schemas import Notebook
from mlbox.scheduler.schemas import Job
from mlbox.tui.views import format as fmt

STATE_STYLES: dict[str, str] = {
    "starting": "bold #d29922",
    "running": "bold #3fb950",
    "stopped": "#8b949e",
    "culled": "#a371f7",
    "failed": "bold #f85149",
}
STATE_ICONS: dict[str, str] = {"starting": "◌", "running": "●", "stopped": "■", "culled": "✂", "failed": "✘"}


def seconds(value: float | None) -> str:
    """A duration in whole seconds (``0s``, ``42s``, ``3m07s``): these tick on every refresh."""
    if value is None:
        return "-"
    return fmt.duration(float(int(max(value, 0.0)))) if value >= 1 else "0s"


def gpus_text(nb: Notebook, job: Job | None) -> str:
    """``1 (GPU 0)`` while its job holds them; the count asked for otherwise; ``cpu`` for none."""
    if nb.gpus == 0:
        return "cpu"
    if job is not None and job.state == "running" and job.gpus:
        held = ",".join(map(str, job.gpus))
        return f"{nb.gpus} (GPU {held})"
    return f"{nb.gpus} wanted" if nb.state == "starting" else str(nb.gpus)


def idle_text(nb: Notebook, now: float) -> str:
    """``busy``; ``12m00s of 1h00m`` idle against its limit; ``-`` when not running."""
    if nb.state != "running":
        return "-"
    if nb.busy:
        return "busy"
    since = nb.last_activity if nb.last_activity is not None else nb.started_at
    idle = 0.0 if since is None else now - since
    return f"{seconds(idle)} of {fmt.duration(nb.idle_timeout_s)}"


def url_text(nb: Notebook) -> str:
    if nb.url is not None and nb.state in ("starting", "running"):
        return nb.url
    if nb.state == "starting":
        return "starting… (the URL shows once the server is up)"
    return "-"


@dataclass(frozen=True)
class NotebookRow:
    id: int
    state: str
    gpus: str
    idle: str
    up: str
    """How long the server has been up (running), or ran (ended)."""
    job_id: int
    url: str
    note: str

    @property
    def key(self) -> str:
        return str(self.id)


def notebook_rows(notebooks: Iterable[Notebook], jobs: Mapping[int, Job], now: float) -> list[NotebookRow]:
    rows = []
    for nb in notebooks:
        end = nb.finished_at if nb.finished_at is not None else now
        up = None if nb.started_at is None else max(end - nb.started_at, 0.0)
        rows.append(
            NotebookRow(
                id=nb.id,
                state=nb.state,
                gpus=gpus_text(nb, jobs.get(nb.job_id)),
                idle=idle_text(nb, now),
                up=seconds(up),
                job_id=nb.job_id,
                url=url_text(nb),
                note=nb.message or "",
            )
        )
    return rows
