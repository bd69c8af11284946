"""The Jobs screen with the Ray executor: where each job runs, and the cluster's resources in
place of the GPU board. The cluster's dashboard is played by a real HTTP server on loopback that
answers ``/api/cluster_status`` as Ray's does (the screen reads nothing else from Ray)."""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlbox.scheduler.config import SchedulerSettings
from mlbox.scheduler.schemas import JobSpec
from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.tui.screens.jobs import JobsScreen
from mlbox.tui.widgets.gpu_board import GpuBoard
from tests.test_tui import app_for, settle

STATUS = {
    "result": True,
    "data": {
        "clusterStatus": {
            "loadMetricsReport": {
                "usage": {
                    "CPU": [3.0, 16.0],
                    "GPU": [1.0, 4.0],
                    "gpu_memory_mb": [24000.0, 96000.0],
                    "node:10.0.0.7": [0.0, 1.0],
                }
            }
        }
    },
}


class _Dashboard(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(STATUS).encode() if self.path.startswith("/api/cluster_status") else b"{}"
        self.send_response(200 if self.path.startswith("/api/cluster_status") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def dashboard() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dashboard)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _texts(svg: str) -> str:
    return "\n".join(
        html.unescape(t).replace("\xa0", " ") for t in re.findall(r"<text[^>]*>(.*?)</text>", svg)
    )


@pytest.mark.parametrize("size", [(160, 48), (100, 30)])
async def test_jobs_screen_shows_ray_nodes_and_the_cluster(
    settings: Settings, dashboard: int, size: tuple[int, int]
) -> None:
    services = Services.open(
        replace(settings, scheduler=SchedulerSettings(executor=f"ray://127.0.0.1:{dashboard}"))
    )
    on_ray = services.scheduler.submit(JobSpec(name="train-on-ray", command=["true"]))
    waiting = services.scheduler.submit(JobSpec(name="still-queued", command=["true"]))
    with services.scheduler.db.atomic() as conn:
        conn.execute(
            "UPDATE jobs SET state = 'running', attempt = 1, started_at = created_at,"
            " executor_job_id = 'mlbox-0abc1234-1-1', node = '10.0.0.7' WHERE id = ?",
            (on_ray.id,),
        )
    app = app_for(services)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, JobsScreen)
        assert "ray 10.0.0.7" in str(screen.table.get_cell(str(on_ray.id), "gpus"))
        assert "ray" not in str(screen.table.get_cell(str(waiting.id), "gpus"))
        board = screen.query_one(GpuBoard)
        assert board.border_title == "Ray cluster"
        text = _texts(pilot.app.export_screenshot())
    assert "Ray cluster" in text
    assert re.search(r"CPU\s+13\s+16", text), text
    assert re.search(r"GPU\s+3\s+4", text), text
    assert re.search(r"gpu_memory_mb\s+72,000\s+96,000", text), text
    assert "node:10.0.0.7" not in text  # Ray's per-node marker resources are not shown
