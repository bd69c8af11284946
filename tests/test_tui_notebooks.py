"""The Notebooks view over a real JupyterLab server started from the TUI, on two simulated GPUs.

A background thread plays the appliance's loop (a scheduler pass, then the
notebook service's pass), so ``n`` queues a server job that really starts,
binds a loopback port and shows its URL with its token; ``s`` stops it after
a confirmation. Rows are also checked as pure values with a fixed clock.
"""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from mlbox.notebooks.schemas import Notebook
from mlbox.scheduler.schemas import Job, JobSpec
from mlbox.services import Services
from mlbox.tui.screens.notebooks import NotebooksScreen
from mlbox.tui.views.notebooks import notebook_rows
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
from mlbox.tui.widgets.gpu_prompt import GpuPrompt
from tests.test_tui import app_for, settle, until

SIZE = (120, 36)
T0 = 1_700_000_000.0


def _nb(id: int, state: str, **kw: object) -> Notebook:
    base: dict[str, object] = dict(
        job_id=10 + id,
        gpus=1,
        root_dir="/nb",
        url=None,
        idle_timeout_s=3600.0,
        created_at=T0,
        started_at=None,
        last_activity=None,
        busy=False,
        finished_at=None,
        message=None,
    )
    base.update(kw)
    return Notebook(id=id, state=state, **base)  # type: ignore[arg-type]


def test_rows_say_gpus_url_and_idle_time() -> None:
    url = "http://127.0.0.1:8888/lab?token=abc"
    running = _nb(1, "running", url=url, started_at=T0 + 10, last_activity=T0 + 300)
    busy = _nb(2, "running", url=url, gpus=0, started_at=T0, busy=True)
    starting = _nb(3, "starting", gpus=2)
    culled = _nb(4, "culled", url=url, started_at=T0, finished_at=T0 + 4000, message="culled: idle")
    job = Job(
        11,
        JobSpec(name="notebook 1", command=["x"]),
        "running",
        1,
        [1],
        1,
        None,
        None,
        T0,
        T0,
        None,
        None,
        "",
    )
    rows = notebook_rows([running, busy, starting, culled], {11: job}, T0 + 1020)
    assert [(r.state, r.gpus, r.idle, r.up) for r in rows] == [
        ("running", "1 (GPU 1)", "12m00s of 1h00m", "16m50s"),
        ("running", "cpu", "busy", "17m00s"),
        ("starting", "2 wanted", "-", "-"),
        ("culled", "1", "-", "1h06m"),
    ]
    assert rows[0].url == url and rows[2].url.startswith("starting") and rows[3].url == "-"
    assert rows[3].note == "culled: idle"


async def test_start_from_the_tui_shows_the_url_then_stop(
    gpu_services: Services, loop: None, tmp_path: Path
) -> None:
    svc = gpu_services
    app = app_for(svc, refresh_s=0.3, live_s=3600)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("7")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, NotebooksScreen)
        await pilot.press("y")  # nothing selected: a warning, no crash
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, GpuPrompt))
        app.screen.query_one(Input).value = "3"  # more GPUs than there are: refused in the prompt
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, GpuPrompt)
        app.screen.query_one(Input).value = "1"
        await pilot.press("enter")
        await until(pilot, lambda: screen.table.row_count == 1, lambda: screen.rows)
        (nb,) = svc.notebooks.list_notebooks()
        assert nb.gpus == 1
        # the server comes up: its URL with the token, its GPU held
        await until(pilot, lambda: screen.rows["1"].state == "running", lambda: screen.rows)
        row = screen.rows["1"]
        token = (svc.notebooks.paths(nb.id).token_file).read_text().strip()
        assert row.url.startswith("http://127.0.0.1:") and row.url.endswith(f"/lab?token={token}")
        assert row.gpus == f"1 (GPU {svc.scheduler.get(nb.job_id).gpus[0]})"
        assert row.url in str(screen.query_one("#detail").render())
        assert row.idle.endswith("of 1h00m") or row.idle == "busy"
        await pilot.press("y")
        assert app.clipboard == row.url
        app.save_screenshot("notebooks.svg", str(tmp_path))  # for a person to look at (under pytest's tmp)
        # s, then y: stopped; its job cancelled and its GPU freed
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await until(pilot, lambda: screen.rows["1"].state == "stopped", lambda: screen.rows)
        await until(pilot, lambda: svc.scheduler.get(nb.job_id).terminal)
        assert svc.scheduler.get(nb.job_id).state == "cancelled" and svc.scheduler.leases() == []
        await pilot.press("s")  # already stopped: no dialog
        await settle(pilot)
        assert app.screen is screen
