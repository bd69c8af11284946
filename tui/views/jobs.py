"""What the Jobs screen shows, computed from the scheduler's values: pure functions, no Textual.

Rows of the queue table (`job_rows`), the GPU board (`board_rows`: who holds
each GPU — a user job, a sweep trial or a notebook — and, with NVML, how busy
it is), a job's details (`job_details`) and the log tail (`LogTail`: bytes
read by offset turned into the last lines, a line split across two reads
kept whole). The clock is passed in (``now``), so ages read the same in a
snapshot.
"""

from __future__ import annotations

import codecs
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mlbox.scheduler.schemas import Attempt, GpuStatus, Job, Lease
from mlbox.textsafe import visible
from mlbox.tui.views import format as fmt

STATE_STYLES: dict[str, str] = {
    "queued": "#8b949e",
    "running": "bold #4ea1ff",
    "stopping": "bold #d29922",
    "succeeded": "#3fb950",
    "failed": "bold #f85149",
    "cancelled": "#d29922",
    "preempted": "#db61a2",
    "timed_out": "bold #db61a2",
    "pruned": "#d29922",
}
STATE_ICONS: dict[str, str] = {
    "queued": "◌",
    "running": "▶",
    "stopping": "◼",
    "succeeded": "✔",
    "failed": "✘",
    "cancelled": "■",
    "preempted": "↺",
    "timed_out": "⧖",
    "pruned": "✂",
}
HOLDER_STYLES: dict[str, str] = {
    "job": "bold #4ea1ff",
    "sweep": "bold #a371f7",
    "notebook": "bold #3fb950",
    "serving": "bold #d29922",
    "free": "#8b949e",
}
MAX_MESSAGE = 48


def shown_state(job: Job) -> str:
    """The state as read in the table: a running job being stopped reads ``stopping``."""
    if job.state == "running" and job.stop_reason is not None:
        return "stopping"
    return job.state


def owner_label(owner: str | None) -> str:
    """``sweep 2``, ``notebook 1``; ``-`` for a user's own job."""
    if owner is None:
        return "-"
    kind, _, ident = owner.partition(":")
    return f"{kind} {ident}" if ident else owner


def owner_kind(owner: str | None) -> str:
    """``job``, ``sweep``, ``notebook`` or ``serving``: what kind of work holds a GPU."""
    if owner is None:
        return "job"
    kind = owner.partition(":")[0]
    return kind if kind in ("sweep", "notebook", "serving") else "job"


def where_cell(job: Job) -> str:
    """Where the last attempt runs: ``local``, or ``ray`` and the node Ray placed it on."""
    if job.executor_job_id is None:
        return "local"
    return f"ray {visible(job.node)}" if job.node else "ray"


def gpus_cell(job: Job) -> str:
    """The GPUs a running job holds (``0,1``); what a waiting one wants (``wants 2``); ``cpu``;
    for a job on a Ray cluster, where it runs (``ray 10.0.0.7``: Ray chose its GPUs)."""
    wanted = job.spec.resources.gpus
    if job.executor_job_id is not None and job.state == "running":
        return where_cell(job)
    if job.state == "running" and job.gpus:
        return ",".join(map(str, job.gpus))
    if wanted == 0:
        return "cpu"
    if job.state in ("queued", "preempted"):
        return f"wants {wanted}"
    return ",".join(map(str, job.gpus)) if job.gpus else f"{wanted}"


def attempt_cell(job: Job) -> str:
    """Attempts started, with the retry budget when there is one: ``2/3``."""
    if job.spec.max_retries:
        return f"{job.attempt}/{job.spec.max_retries + 1}"
    return str(job.attempt)


def clip(text: str, width: int = MAX_MESSAGE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True)
class JobRow:
    id: int
    name: str
    owner: str
    state: str
    priority: int
    gpus: str
    attempt: str
    age: str
    ran: str
    note: str

    @property
    def key(self) -> str:
        return str(self.id)


def ran_for(job: Job, now: float) -> float | None:
    """How long the last attempt ran (so far, when running)."""
    if job.started_at is None:
        return None
    end = now if job.state == "running" else (job.finished_at or now)
    return max(end - job.started_at, 0.0)


def note(job: Job) -> str:
    """One short line of why: the job's message, else its exit code."""
    if job.message:
        return clip(job.message)
    if job.exit_code is not None and job.state != "succeeded":
        return f"exit code {job.exit_code}"
    return ""


def job_rows(jobs: Iterable[Job], now: float) -> list[JobRow]:
    """One row per job, in the order given (the service lists newest first)."""
    return [
        JobRow(
            id=j.id,
            name=j.spec.name,
            owner=owner_label(j.spec.owner),
            state=shown_state(j),
            priority=j.spec.priority,
            gpus=gpus_cell(j),
            attempt=attempt_cell(j),
            age=fmt.duration(max(now - j.created_at, 0.0)),
            ran=fmt.duration(ran_for(j, now)),
            note=note(j),
        )
        for j in jobs
    ]


def state_counts(jobs: Iterable[Job]) -> dict[str, int]:
    """Jobs per shown state, in the order states are listed in `STATE_STYLES`."""
    counts: dict[str, int] = {}
    for j in jobs:
        s = shown_state(j)
        counts[s] = counts.get(s, 0) + 1
    return {s: counts[s] for s in STATE_STYLES if s in counts}


# -- the GPU board ------------------------------------------------------------------------------


_TRIAL = re.compile(r"-t(\d+)$")


def holder_label(lease: Lease) -> str:
    """Who holds a GPU: ``job 7 train``, ``sweep 2 trial 3``, ``notebook 1``, ``served churn/3``."""
    kind = owner_kind(lease.owner)
    if lease.job_id is None:  # a lease held outside jobs: a served model
        return f"served {(lease.owner or '').partition(':')[2] or lease.job_name}"
    if kind == "sweep":
        m = _TRIAL.search(lease.job_name)
        trial = f" trial {m.group(1)}" if m else f" {lease.job_name}"
        return f"{owner_label(lease.owner)}{trial} (job {lease.job_id})"
    if kind == "notebook":
        return f"{owner_label(lease.owner)} (job {lease.job_id})"
    return f"job {lease.job_id} {lease.job_name}"


@dataclass(frozen=True)
class GpuRow:
    index: int
    name: str
    holder: str
    """``free`` when no lease holds it."""
    kind: str
    """``job``, ``sweep``, ``notebook`` or ``free``."""
    job_id: int | None
    held: str
    """How long the lease has been held."""
    usage: str
    """``37% · 1,204/24,576 MiB`` from NVML; ``simulated`` for a simulated GPU."""


def usage_cell(status: GpuStatus) -> str:
    if status.gpu.simulated:
        return "simulated"
    parts = []
    if status.utilization is not None:
        parts.append(f"{status.utilization:.0f}%")
    if status.memory_used_mb is not None:
        total = f"/{status.gpu.memory_mb:,}" if status.gpu.memory_mb else ""
        parts.append(f"{status.memory_used_mb:,}{total} MiB")
    return " · ".join(parts) if parts else "no NVML reading"


def board_rows(board: Sequence[GpuStatus], now: float) -> list[GpuRow]:
    rows = []
    for s in board:
        lease = s.lease
        rows.append(
            GpuRow(
                index=s.gpu.index,
                name=s.gpu.name,
                holder="free" if lease is None else holder_label(lease),
                kind="free" if lease is None else owner_kind(lease.owner),
                job_id=None if lease is None else lease.job_id,
                held="" if lease is None else fmt.duration(max(now - lease.since, 0.0)),
                usage=usage_cell(s),
            )
        )
    return rows


def _amount(value: float) -> str:
    """``13``, ``72,000``, ``0.25``: whole amounts without a fraction, fractions of a core kept."""
    return f"{value:,.0f}" if value == int(value) or abs(value) >= 100 else f"{value:.2f}"


def cluster_rows(cluster: dict[str, dict[str, float]]) -> list[tuple[str, str, str]]:
    """The Ray cluster's resources as (name, free, total), CPU and GPU first; memory in GiB."""
    total, free = cluster.get("total", {}), cluster.get("available", {})
    first = [n for n in ("CPU", "GPU") if n in total]
    names = first + sorted(n for n in total if n not in first)
    rows: list[tuple[str, str, str]] = []
    for name in names:
        if name in ("memory", "object_store_memory"):
            rows.append((name, f"{free.get(name, 0.0) / 2**30:,.1f} GiB", f"{total[name] / 2**30:,.1f} GiB"))
        else:
            rows.append((name, _amount(free.get(name, 0.0)), _amount(total[name])))
    return rows


# -- a job's details --------------------------------------------------------------------------------


def command_text(job: Job) -> str:
    spec = job.spec
    if spec.command is not None:
        return " ".join(spec.command)
    if spec.script is not None:
        return " ".join([spec.script, *spec.script_args])
    return f"{spec.function}({', '.join(f'{k}={v!r}' for k, v in spec.kwargs.items())})"


def job_details(job: Job, attempts: Sequence[Attempt], now: float) -> list[tuple[str, str]]:
    """The detail dialog's lines: what runs, with what, where its output and run are."""
    spec = job.spec
    r = spec.resources
    resources = f"{r.gpus} GPU{'' if r.gpus == 1 else 's'}, {r.cpus:g} CPU"
    if r.gpu_memory_mb:
        resources += f", {r.gpu_memory_mb:,} MiB per GPU"
    rows = [
        ("job", f"{job.id} {spec.name}"),
        ("state", shown_state(job) + (f" ({job.stop_reason})" if job.stop_reason else "")),
        ("owner", owner_label(spec.owner)),
        ("command", command_text(job)),
        ("launcher", spec.launcher),
        ("resources", resources),
        ("priority", str(spec.priority) + (" · preemptible" if spec.preemptible else "")),
        ("retries", f"{job.retries_used} of {spec.max_retries} used"),
        ("timeout", "-" if spec.timeout_s is None else fmt.duration(spec.timeout_s)),
        ("GPUs", gpus_cell(job)),
        (
            "runs on",
            where_cell(job) + (f" · {visible(job.executor_job_id)}" if job.executor_job_id else ""),
        ),
        ("created", fmt.when(job.created_at) + f" ({fmt.duration(max(now - job.created_at, 0))} ago)"),
        ("started", fmt.when(job.started_at)),
        ("finished", fmt.when(job.finished_at)),
        ("exit code", "-" if job.exit_code is None else str(job.exit_code)),
        ("python", (job.python or "-") + (f" (env {job.env_prefix})" if job.env_prefix else "")),
        ("environment", spec.env_policy),
        ("run", "-" if job.run_id is None else f"#{job.run_id} in {spec.experiment}"),
        ("message", job.message or "-"),
        ("log", job.log_path),
    ]
    if spec.workdir:
        rows.insert(4, ("workdir", spec.workdir))
    for a in attempts:
        took = fmt.duration(None if a.finished_at is None else a.finished_at - a.started_at)
        code = "" if a.exit_code is None else f", exit {a.exit_code}"
        gpus = ",".join(map(str, a.gpus)) or "cpu"
        rows.append((f"attempt {a.attempt}", f"{a.outcome} · {took} on {gpus}{code}"))
    return rows


# -- the log tail ---------------------------------------------------------------------------------

_ESCAPES = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: a title, a clipboard write, a hyperlink
    r"|\x1b\[[0-9;?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erasing
    r"|\x1b[@-Z\\-_]"
)


def clean_line(line: str) -> str:
    """A log line as a terminal would leave it: after the last carriage return (progress bars
    redraw their line), without its colour and cursor escapes (removed whole, payload too);
    any other control character is shown as its escape (`mlbox.textsafe.visible`)."""
    line = line.rstrip("\r")
    if "\r" in line:
        line = line.rsplit("\r", 1)[1]
    return visible(_ESCAPES.sub("", line).expandtabs(4))


class LogTail:
    """The last ``max_lines`` lines of a log read piecewise by offset.

    Bytes are decoded incrementally (a UTF-8 character split across two
    reads decodes whole) and the unfinished last line is kept apart until its
    newline comes, so `lines` shows it as it grows.
    """

    def __init__(self, max_lines: int = 500) -> None:
        self.max_lines = max_lines
        self.offset = 0
        """Where the next read starts."""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._partial = ""
        self._skip_first = False

    def start_at(self, offset: int) -> None:
        """Begin mid-file (the end of a long log): the first, cut line is dropped."""
        self.offset = offset
        self._skip_first = offset > 0

    def feed(self, data: bytes, next_offset: int) -> bool:
        """Take the bytes read at `offset`; True when something new arrived."""
        self.offset = next_offset
        if not data:
            return False
        text = self._partial + self._decoder.decode(data)
        *complete, self._partial = text.split("\n")
        if self._skip_first and complete:
            complete = complete[1:]
            self._skip_first = False
        self._lines.extend(clean_line(line) for line in complete)
        return True

    def lines(self) -> list[str]:
        out = list(self._lines)
        if self._partial and not self._skip_first:
            out.append(clean_line(self._partial))
        return out[-self.max_lines :]
