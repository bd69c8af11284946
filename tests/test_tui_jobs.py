"""The Jobs screen over a real scheduler: real job processes on two simulated GPUs.

A background thread plays the appliance's scheduler loop (`reconcile_once`
every 50 ms), so submitted jobs start, print and end for real while the
screen polls. The snapshot class instead seeds fixed job rows (states, GPU
leases, times and a log file written in the test) and fixes the screen's
clock, since the service stamps rows with the wall clock.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from mlbox.scheduler.schemas import Gpu, GpuStatus, JobSpec, Lease, Resources
from mlbox.services import Services
from mlbox.tui.screens.jobs import JobsScreen
from mlbox.tui.screens.run_detail import RunDetailScreen
from mlbox.tui.views.jobs import LogTail, board_rows, clean_line, gpus_cell, holder_label, job_rows
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
from mlbox.tui.widgets.gpu_board import GpuBoard
from mlbox.tui.widgets.job_detail import JobDetailDialog
from tests.test_tui import app_for, settle, until

SIZE = (120, 36)
T0 = 1_700_000_000.0
Snap = Callable[..., bool]
HELLO = "print('hello', flush=True); import time; time.sleep(60)"


async def open_jobs(pilot: Pilot[None]) -> JobsScreen:
    await settle(pilot)
    await pilot.press("5")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, JobsScreen)
    return screen


def cell(screen: JobsScreen, job_id: int, column: str) -> str:
    return str(screen.table.get_cell(str(job_id), column))


# -- pure parts ---------------------------------------------------------------------------------


def test_log_tail_keeps_the_last_lines_and_joins_split_reads() -> None:
    tail = LogTail(max_lines=3)
    assert not tail.feed(b"", 0)
    data = "épo".encode()  # 'é' is two bytes: split it across two reads
    assert tail.feed(data[:1], 1) and tail.lines() == []
    tail.feed(data[1:] + b"ch 1\nepoch 2\nep", len(data) + 14)
    assert tail.lines() == ["époch 1", "epoch 2", "ep"]  # the partial line shows as it grows
    tail.feed(b"och 3\n\x1b[32mgreen\x1b[0m\n", 0)
    assert tail.lines() == ["epoch 2", "epoch 3", "green"]
    tail.feed(b"10%\r50%\r100%\n", 0)
    assert tail.lines()[-1] == "100%"  # a progress bar leaves its last state
    mid = LogTail()
    mid.start_at(100)
    mid.feed(b"cut line\nwhole\npart", 120)
    assert mid.lines() == ["whole", "part"] and mid.offset == 120
    assert clean_line("a\tb\x07\r") == "a   b\\x07"  # a bell is shown, not rung
    assert clean_line("x\x1b]52;c;aGk=\x07y\x1b]0;t\x1b\\z\x1b[2J!") == "xyz!"  # OSC and CSI removed whole
    assert clean_line("a\x1bb\x9b2Jc") == "a\\x1bb\\x9b2Jc"  # a lone ESC or a C1 CSI is made visible


def test_board_names_who_holds_each_gpu() -> None:
    sim = [Gpu(i, "simulated", None, True) for i in range(3)]
    board = [
        GpuStatus(sim[0], Lease(0, 7, None, "train", T0 - 65), None, None),
        GpuStatus(sim[1], Lease(1, 9, "sweep:2", "lr-search-t3", T0 - 5), None, None),
        GpuStatus(sim[2], None, None, None),
    ]
    rows = board_rows(board, T0)
    assert [(r.holder, r.kind, r.held, r.usage) for r in rows] == [
        ("job 7 train", "job", "1m05s", "simulated"),
        ("sweep 2 trial 3 (job 9)", "sweep", "5s", "simulated"),
        ("free", "free", "", "simulated"),
    ]
    assert holder_label(Lease(1, 4, "notebook:1", "notebook 1", T0)) == "notebook 1 (job 4)"
    served = Lease(2, None, "serving:churn/3", "serving:churn/3", T0)
    assert holder_label(served) == "served churn/3"
    (row,) = board_rows([GpuStatus(sim[2], served, None, None)], T0)
    assert (row.holder, row.kind) == ("served churn/3", "serving")
    real = Gpu(0, "NVIDIA H100", 81_559, False)
    (nvml,) = board_rows([GpuStatus(real, None, 37.0, 1204)], T0)
    assert nvml.usage == "37% · 1,204/81,559 MiB"
    (unread,) = board_rows([GpuStatus(real, None, None, None)], T0)
    assert unread.usage == "no NVML reading"


# -- the screen over real jobs ----------------------------------------------------------------------


async def test_running_job_its_gpu_and_log_then_cancel_and_retry(gpu_services: Services, loop: None) -> None:
    sched = gpu_services.scheduler
    job = sched.submit(
        JobSpec(name="hello", command=[sys.executable, "-c", HELLO], resources=Resources(gpus=1))
    )
    cpu = sched.submit(JobSpec(name="quick", command=[sys.executable, "-c", "print('done')"]))
    app = app_for(gpu_services, refresh_s=0.2, live_s=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_jobs(pilot)
        await until(pilot, lambda: "running" in cell(screen, job.id, "state"), lambda: screen.jobs)
        await until(pilot, lambda: "succeeded" in cell(screen, cpu.id, "state"), lambda: screen.jobs)
        assert cell(screen, cpu.id, "gpus") == "cpu"
        board = screen.query_one(GpuBoard)
        await until(pilot, lambda: board.rows[0].job_id == job.id, lambda: board.rows)
        assert board.rows[0].holder == f"job {job.id} hello" and board.rows[1].holder == "free"
        assert [r.usage for r in board.rows] == ["simulated", "simulated"]
        assert cell(screen, job.id, "gpus") == str(sched.get(job.id).gpus[0])
        # the log tail follows the selected job (the newest is first: move to ours)
        screen.table.move_cursor(row=screen.order.index(job.id))
        await until(pilot, lambda: "hello" in screen.log_view.shown, lambda: screen.log_view.shown)
        assert screen.tail_job == job.id

        # c, then n: nothing happens
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await settle(pilot)
        assert app.screen is screen and sched.get(job.id).state == "running"
        # c, then y: cancelled, its GPU freed
        await pilot.press("c")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog) and "running → cancelled" in dialog.change
        await pilot.press("y")
        await until(pilot, lambda: "cancelled" in cell(screen, job.id, "state"), lambda: screen.jobs)
        await until(pilot, lambda: board.rows[0].kind == "free", lambda: board.rows)
        assert sched.get(job.id).state == "cancelled"
        # c on a finished job asks nothing
        await pilot.press("c")
        await settle(pilot)
        assert app.screen is screen

        # r: the job runs again as attempt 2 and its log shows the second hello
        await pilot.press("r")
        await until(pilot, lambda: "running" in cell(screen, job.id, "state"), lambda: screen.jobs)
        assert cell(screen, job.id, "attempt") == "2"
        await until(pilot, lambda: screen.log_view.shown.count("hello") == 2, lambda: screen.log_view.shown)
        # r on a running job is refused with a note, not a dialog
        await pilot.press("r")
        await settle(pilot)
        assert app.screen is screen and sched.get(job.id).attempt == 2

        # l pauses the tail: new output is not read until following again
        await pilot.press("l")
        assert not screen.follow and "paused" in str(screen.log_view.border_subtitle)
        await pilot.press("l")
        assert screen.follow


async def test_enter_shows_details_and_opens_the_run(gpu_services: Services, loop: None) -> None:
    sched = gpu_services.scheduler
    job = sched.submit(JobSpec(name="quick", command=[sys.executable, "-c", "print('done')"], priority=3))
    sched.wait(job.id, timeout_s=60)
    app = app_for(gpu_services, live_s=3600)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_jobs(pilot)
        await until(pilot, lambda: screen.table.row_count == 1)
        assert cell(screen, job.id, "prio") == "3"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailDialog))
        dialog = app.screen
        assert isinstance(dialog, JobDetailDialog)
        fields = dict(dialog.rows)
        assert fields["state"] == "succeeded" and "print('done')" in fields["command"]
        assert fields["attempt 1"].startswith("succeeded") and fields["exit code"] == "0"
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        run = app.screen
        assert isinstance(run, RunDetailScreen) and run.run_id == sched.get(job.id).run_id


# -- snapshots ------------------------------------------------------------------------------------


def seed_jobs(services: Services) -> None:
    """Six jobs in fixed states and times, two GPU leases, and a log for the running one.

    The rows are queued through the service, then set as a scheduler pass
    would leave them (no loop runs: nothing starts).
    """
    sched = services.scheduler
    specs = [
        JobSpec(name="prepare-data", command=["python", "prep.py"]),
        JobSpec(
            name="train-resnet", command=["python", "train.py"], resources=Resources(gpus=1), max_retries=2
        ),
        JobSpec(
            name="lr-search-t3", command=["python", "trial.py"], resources=Resources(gpus=1), owner="sweep:1"
        ),
        JobSpec(name="broken", command=["python", "-c", "raise SystemExit(3)"]),
        JobSpec(name="eval", command=["python", "eval.py"], resources=Resources(gpus=2), priority=5),
        JobSpec(name="notebook 1", command=["jupyter"], owner="notebook:1"),
    ]
    ids = [sched.submit(s).id for s in specs]
    states = [
        # state, attempt, gpus, exit, started, finished, message
        ("succeeded", 1, [], 0, 60, 300, None),
        ("running", 2, [0], None, 900, None, "retried after a crash"),
        ("running", 1, [1], None, 1500, None, None),
        ("failed", 1, [], 3, 1600, 1610, None),
        ("queued", 0, [], None, None, None, "waits for 2 GPUs"),
        ("cancelled", 1, [], -15, 1700, 1750, "stopped by user"),
    ]
    with sched.db.atomic() as conn:
        for i, (job_id, (state, attempt, gpus, code, started, finished, msg)) in enumerate(
            zip(ids, states, strict=True)
        ):
            conn.execute(
                "UPDATE jobs SET state = ?, attempt = ?, gpu_list = ?, exit_code = ?, created_at = ?,"
                " queued_at = ?, started_at = ?, finished_at = ?, message = ? WHERE id = ?",
                (
                    state,
                    attempt,
                    json.dumps(gpus),
                    code,
                    T0 + 30 * i,
                    T0 + 30 * i,
                    None if started is None else T0 + started,
                    None if finished is None else T0 + finished,
                    msg,
                    job_id,
                ),
            )
            for gpu in gpus:
                conn.execute(
                    "INSERT INTO gpu_leases (gpu, job_id, attempt, since) VALUES (?, ?, ?, ?)",
                    (gpu, job_id, attempt, T0 + (started or 0)),
                )
    log = sched.log_path(ids[1])
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(f"epoch {e}: loss {1 / (e + 1):.4f}\n" for e in range(40)) + "saving checkpoint")


class TestJobsScreen:
    def test_queue_board_and_log(self, gpu_services: Services, utc: None, snap_compare: Snap) -> None:
        seed_jobs(gpu_services)

        async def run_before(pilot: Pilot[None]) -> None:
            screen = await open_jobs(pilot)
            screen.clock = lambda: T0 + 2000
            screen.reload()
            await settle(pilot)
            await pilot.press("down", "down", "down", "down")  # job 2, the running train-resnet
            await until(pilot, lambda: "saving checkpoint" in screen.log_view.shown)

        assert snap_compare(app_for(gpu_services, live_s=3600), terminal_size=SIZE, run_before=run_before)

    def test_cancel_confirmation(self, gpu_services: Services, utc: None, snap_compare: Snap) -> None:
        seed_jobs(gpu_services)

        async def run_before(pilot: Pilot[None]) -> None:
            screen = await open_jobs(pilot)
            screen.clock = lambda: T0 + 2000
            screen.reload()
            await settle(pilot)
            await pilot.press("down", "down", "down", "down", "c")
            await settle(pilot)

        assert snap_compare(app_for(gpu_services, live_s=3600), terminal_size=SIZE, run_before=run_before)


def test_rows_for_fixed_jobs(gpu_services: Services) -> None:
    seed_jobs(gpu_services)
    jobs = gpu_services.scheduler.list_jobs()
    rows = {r.name: r for r in job_rows(jobs, T0 + 2000)}
    assert rows["train-resnet"].attempt == "2/3" and rows["train-resnet"].gpus == "0"
    assert rows["eval"].gpus == "wants 2" and rows["eval"].ran == "-" and rows["eval"].age == "31m20s"
    assert rows["broken"].note == "exit code 3" and rows["lr-search-t3"].owner == "sweep 1"
    assert rows["notebook 1"].owner == "notebook 1" and rows["prepare-data"].ran == "4m00s"
    assert gpus_cell(next(j for j in jobs if j.spec.name == "prepare-data")) == "cpu"


async def test_empty_queue_says_how_to_submit(gpu_services: Services) -> None:
    async with app_for(gpu_services).run_test(size=SIZE) as pilot:
        screen = await open_jobs(pilot)
        assert "mlbox jobs submit" in str(screen.query_one("#summary", Static).render())
        assert isinstance(screen.table, DataTable) and screen.table.row_count == 0
        assert len(screen.query_one(GpuBoard).rows) == 2
