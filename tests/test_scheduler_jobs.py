"""The scheduler driven in-process (``reconcile_once`` in a poll loop) over real job processes."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from mlbox.scheduler.migrations import migrations
from mlbox.scheduler.schemas import JobSpec, Resources
from mlbox.scheduler.service import SchedulerService
from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.store.errors import Conflict, InvalidInput, NotFound

PY = sys.executable


@pytest.fixture
def sched(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SchedulerService]:
    monkeypatch.setenv("MLBOX_GPUS", "4")
    monkeypatch.setenv("MLBOX_SCHEDULER_CPUS", "16")
    monkeypatch.setenv("MLBOX_SCHEDULER_KILL_GRACE_S", "1")
    s = Services.open(Settings.from_env()).scheduler
    yield s
    s.close(kill=True)


def drive(s: SchedulerService, until: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "condition not reached in time"
        s.reconcile_once()
        time.sleep(0.05)


def py_job(name: str, code: str, **kw: object) -> JobSpec:
    return JobSpec(name=name, command=[PY, "-c", textwrap.dedent(code)], **kw)  # type: ignore[arg-type]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_migrations_apply_once(sched: SchedulerService) -> None:
    assert migrations.apply(sched.db) == []
    cols = {r["name"] for r in sched.db.query("PRAGMA table_info(jobs)")}
    assert {"state", "attempt", "pid", "pid_started", "stop_reason"} <= cols


def test_env_lease_and_tracking_attach(sched: SchedulerService, tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    code = f"""
        import os, mlbox
        keys = ["CUDA_VISIBLE_DEVICES", "MLBOX_JOB_ID", "MLBOX_RUN_ID", "MLBOX_JOB_ATTEMPT", "MLBOX_CHECKPOINT_DIR"]
        open({str(out)!r}, "w").write(repr({{k: os.environ[k] for k in keys}}))
        mlbox.start_run()
        mlbox.log_metric("loss", 0.5)
    """
    job = sched.submit(py_job("env", code, resources=Resources(gpus=2)))
    cpu = sched.submit(py_job("cpu", "print('cpu job')"))
    drive(sched, lambda: sched.get(job.id).terminal and sched.get(cpu.id).terminal)
    done = sched.get(job.id)
    assert done.state == "succeeded" and done.exit_code == 0 and done.attempt == 1
    env = eval(out.read_text())
    assert env["CUDA_VISIBLE_DEVICES"] == ",".join(map(str, done.gpus)) and len(done.gpus) == 2
    assert env["MLBOX_JOB_ID"] == str(job.id) and env["MLBOX_RUN_ID"] == str(done.run_id)
    assert env["MLBOX_CHECKPOINT_DIR"] == done.checkpoint_dir
    run = sched.tracking.get_run(done.run_id)  # type: ignore[arg-type]
    assert (
        run.metrics == {"loss": 0.5} and run.status == "finished" and run.tags["mlbox.job_id"] == str(job.id)
    )
    assert sched.leases() == []
    data, nxt = sched.read_log(cpu.id)
    assert b"cpu job" in data and nxt == len(data)
    assert sched.read_log(cpu.id, nxt) == (b"", nxt)


def test_gpus_never_leased_twice_under_load(sched: SchedulerService) -> None:
    ids = [
        sched.submit(py_job(f"j{i}", "import time; time.sleep(0.3)", resources=Resources(gpus=1 + i % 3))).id
        for i in range(8)
    ]
    seen_max = 0

    def check() -> bool:
        nonlocal seen_max
        leases = sched.leases()
        assert len({lease.gpu for lease in leases}) == len(leases)
        running = sched.list_jobs(["running"])
        used = [g for j in running for g in j.gpus]
        assert len(used) == len(set(used)) and len(used) <= 4
        seen_max = max(seen_max, len(used))
        return all(sched.get(i).terminal for i in ids)

    drive(sched, check)
    assert all(sched.get(i).state == "succeeded" for i in ids)
    assert seen_max >= 3


def test_cancel_stops_the_whole_tree(sched: SchedulerService, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = f"""
        import subprocess, sys, time, os
        child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        time.sleep(300)
    """
    job = sched.submit(py_job("tree", code))
    drive(sched, lambda: pids.exists() and len(pids.read_text().split()) == 2)
    me, grandchild = map(int, pids.read_text().split())
    assert not gone(grandchild)
    sched.cancel(job.id)
    drive(sched, lambda: sched.get(job.id).terminal)
    j = sched.get(job.id)
    assert j.state == "cancelled" and sched.leases() == []
    deadline = time.monotonic() + 10
    while not (gone(me) and gone(grandchild)):
        assert time.monotonic() < deadline, "a process of the cancelled job survived"
        time.sleep(0.05)


def test_cancel_waiting_job_and_errors(sched: SchedulerService) -> None:
    job = sched.submit(py_job("never", "pass", resources=Resources(gpus=4)))
    assert sched.cancel(job.id).state == "cancelled"
    with pytest.raises(NotFound):
        sched.cancel(99999)
    with pytest.raises(Conflict):
        sched.retry(sched.submit(py_job("q", "pass")).id)


def test_a_job_that_cannot_fit_stays_queued_and_says_why(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLBOX_GPUS", "0:16000,1:24000")
    s = Services.open(Settings.from_env()).scheduler
    try:
        big = s.submit(py_job("big", "pass", resources=Resources(gpus=2, gpu_memory_mb=20000)))
        s.reconcile_once()
        job = s.get(big.id)
        assert (job.state, job.attempt) == ("queued", 0)
        assert job.message == (
            "cannot fit: it asks for 2 GPUs with 20000 MiB each; 1 of the 2 GPUs have that much "
            "(the largest has 24000 MiB)"
        )
        fits = s.submit(py_job("fits", "pass", resources=Resources(gpus=1, gpu_memory_mb=20000)))
        drive(s, lambda: s.get(fits.id).terminal)
        assert s.get(fits.id).gpus == [1]  # only the 24 GB GPU has room
    finally:
        s.close(kill=True)


def test_timeout_and_retries(sched: SchedulerService, tmp_path: Path) -> None:
    slow = sched.submit(py_job("slow", "import time; time.sleep(60)", timeout_s=0.5))
    attempts = tmp_path / "attempts"
    flaky = sched.submit(
        py_job(
            "flaky",
            f"import os, sys; open({str(attempts)!r}, 'a').write(os.environ['MLBOX_JOB_ATTEMPT'] + '\\n');"
            " sys.exit(0 if os.environ['MLBOX_JOB_ATTEMPT'] == '3' else 4)",
            max_retries=2,
        )
    )
    failing = sched.submit(py_job("failing", "import sys; sys.exit(5)", max_retries=1))
    drive(sched, lambda: all(sched.get(j.id).terminal for j in (slow, flaky, failing)))
    assert sched.get(slow.id).state == "timed_out"
    f = sched.get(flaky.id)
    assert f.state == "succeeded" and f.attempt == 3 and f.retries_used == 2
    assert attempts.read_text().split() == ["1", "2", "3"]
    assert [a.exit_code for a in sched.attempts(flaky.id)] == [4, 4, 0]
    g = sched.get(failing.id)
    assert g.state == "failed" and g.exit_code == 5 and g.attempt == 2
    again = sched.retry(failing.id)
    assert again.state == "queued"
    drive(sched, lambda: sched.get(failing.id).terminal)
    assert sched.get(failing.id).attempt == 4  # a retry by hand gets the whole retry policy again


RESUMABLE = """
import os, sys, time, mlbox
ck = mlbox.checkpoint.load_latest()
start = 0 if ck is None else ck.step + 1
with open(os.environ["TRACE"], "a") as f:
    f.write(f"{os.environ['MLBOX_JOB_ATTEMPT']} {start}\\n")
for step in range(start, 6):
    mlbox.checkpoint.save({"step": step, "w": step * 2}, step)
    time.sleep(0.15)
"""


def test_resume_from_checkpoint_after_kill(sched: SchedulerService, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    job = sched.submit(
        JobSpec(name="resume", command=[PY, "-c", RESUMABLE], env={"TRACE": str(trace)}, max_retries=1)
    )
    ckdir = Path(sched.get(job.id).checkpoint_dir)
    drive(sched, lambda: len(list(ckdir.glob("step-*"))) >= 2)
    pid = sched.get(job.id).pid
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)  # the machine's OOM killer, say: no exit status recorded
    drive(sched, lambda: sched.get(job.id).terminal)
    j = sched.get(job.id)
    assert j.state == "succeeded" and j.attempt == 2
    first, second = [line.split() for line in trace.read_text().splitlines()]
    assert first == ["1", "0"] and second[0] == "2" and int(second[1]) >= 2
    assert [(a.outcome, a.exit_code) for a in sched.attempts(job.id)] == [("failed", -9), ("succeeded", 0)]


def test_preemption_requeues_and_resumes(sched: SchedulerService, tmp_path: Path) -> None:
    low = sched.submit(
        py_job("low", "import time; time.sleep(120)", resources=Resources(gpus=4), preemptible=True)
    )
    drive(sched, lambda: sched.get(low.id).pid is not None)
    high = sched.submit(py_job("high", "print('high')", resources=Resources(gpus=2), priority=10))
    drive(sched, lambda: sched.get(high.id).terminal)
    assert sched.get(high.id).state == "succeeded"
    drive(sched, lambda: sched.get(low.id).attempt == 2 and sched.get(low.id).state == "running")
    assert sched.attempts(low.id)[0].outcome == "preempted"
    sched.cancel(low.id)
    drive(sched, lambda: sched.get(low.id).terminal)


def test_function_job(sched: SchedulerService, tmp_path: Path) -> None:
    (tmp_path / "myjobs.py").write_text("def train(lr):\n    print('lr', lr)\n    return lr * 2\n")
    job = sched.submit(
        JobSpec(name="fn", function="myjobs:train", kwargs={"lr": 0.25}, workdir=str(tmp_path))
    )
    drive(sched, lambda: sched.get(job.id).terminal)
    j = sched.get(job.id)
    assert j.state == "succeeded", sched.read_log(job.id)[0]
    assert b"lr 0.25" in sched.read_log(job.id)[0]
    assert sched.tracking.get_run(j.run_id).metrics == {"result": 0.5}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (JobSpec(name="x"), "command"),
        (JobSpec(name="x", command=["a"], function="m:f"), "command"),
        (JobSpec(name="", command=["a"]), "name"),
        (JobSpec(name="x", function="not a ref"), "function"),
        (JobSpec(name="x", command=["a"], resources=Resources(gpus=-1)), "resources.gpus"),
        (JobSpec(name="x", command=["a"], resources=Resources(gpus=5)), "resources.gpus"),
        (JobSpec(name="x", command=["a"], resources=Resources(cpus=0)), "resources.cpus"),
        (JobSpec(name="x", command=["a"], timeout_s=-1), "timeout_s"),
        (JobSpec(name="x", command=["a"], max_retries=-1), "max_retries"),
        (JobSpec(name="x", command=["a"], env={"CUDA_VISIBLE_DEVICES": "0"}), "env"),
        (JobSpec(name="x", command=["a"], workdir="/no/such/dir"), "workdir"),
        (JobSpec(name="x", script="/no/such.py"), "script"),
    ],
)
def test_bad_specs_name_the_field(sched: SchedulerService, spec: JobSpec, field: str) -> None:
    with pytest.raises(InvalidInput) as e:
        sched.submit(spec)
    assert e.value.field == field


def test_torchrun_two_simulated_gpus_gloo(sched: SchedulerService, tmp_path: Path) -> None:
    script = tmp_path / "ddp.py"
    out = tmp_path / "ranks"
    script.write_text(
        textwrap.dedent(f"""
        import os, torch, torch.distributed as dist
        dist.init_process_group("gloo")
        t = torch.tensor([float(dist.get_rank() + 1)])
        dist.all_reduce(t)
        with open({str(out)!r}, "a") as f:
            f.write(" ".join([os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"],
                              os.environ["CUDA_VISIBLE_DEVICES"], str(t.item())]) + "\\n")
        dist.destroy_process_group()
    """)
    )
    job = sched.submit(
        JobSpec(
            name="ddp",
            script=str(script),
            resources=Resources(gpus=2),
            launcher="torchrun",
            workdir=str(tmp_path),
        )
    )
    drive(sched, lambda: sched.get(job.id).terminal, timeout=180)
    j = sched.get(job.id)
    assert j.state == "succeeded", sched.read_log(job.id)[0].decode()[-2000:]
    lines = sorted(out.read_text().split("\n")[:-1])
    visible = ",".join(map(str, j.gpus))
    assert lines == [f"0 2 0 {visible} 3.0", f"1 2 1 {visible} 3.0"]


def test_the_row_is_the_lock(sched: SchedulerService) -> None:
    """Two schedulers (two appliances) racing: one claim per attempt, one lease per GPU."""
    other = SchedulerService(sched.db, sched.home, sched.tracking, sched.settings)
    a = sched.submit(py_job("a", "pass", resources=Resources(gpus=1)))
    b = sched.submit(py_job("b", "pass", resources=Resources(gpus=1)))
    now = time.time()
    assert sched.reconciler.claim(a.id, (0,), now) is not None
    # already claimed: the conditional UPDATE matched nothing
    assert other.reconciler.claim(a.id, (1,), now) is None
    assert other.reconciler.claim(b.id, (0,), now) is None  # GPU 0 is leased: the whole claim rolls back
    assert sched.get(b.id).state == "queued" and sched.get(b.id).attempt == 0
    assert [(lease.gpu, lease.job_id) for lease in sched.leases()] == [(0, a.id)]


def test_claimed_but_never_started_is_queued_again(
    home: Path, monkeypatch: pytest.MonkeyPatch, sched: SchedulerService
) -> None:
    """The appliance died between claiming an attempt and spawning it: no retry is used up."""
    monkeypatch.setenv("MLBOX_SCHEDULER_LOST_AFTER_S", "0.3")
    s = Services.open(Settings.from_env()).scheduler
    job = s.submit(py_job("x", "pass", max_retries=0))
    assert s.reconciler.claim(job.id, (), time.time()) is not None
    s.reconcile_once()
    assert s.get(job.id).state == "running"  # too early to tell: another appliance may be starting it
    time.sleep(0.4)
    drive(s, lambda: s.get(job.id).terminal)
    j = s.get(job.id)
    assert (j.state, j.attempt, j.retries_used) == ("succeeded", 2, 0)
    assert [a.outcome for a in s.attempts(job.id)] == ["never started", "succeeded"]
