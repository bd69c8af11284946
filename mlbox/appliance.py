"""The appliance: the composition root that runs mlbox's loops and HTTP API.

`mlbox up` runs it headless; the TUI embeds it in its own process. Its loops
are reconciliation loops over the database (a crashed run is found by looking,
not by being told), so killing the appliance at any moment loses nothing:
the next start looks again.

A running appliance announces itself in ``$MLBOX_HOME/appliance.json`` (pid,
address), so a second front end can work beside it instead of starting
another API on the same port.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from mlbox.scheduler.processes import process_start
from mlbox.scheduler.service import SchedulerService
from mlbox.services import Services
from mlbox.serving.predlog import PredictionLog
from mlbox.serving.service import ServingService
from mlbox.settings import Settings
from mlbox.store.errors import Conflict

log = logging.getLogger("mlbox.appliance")


class LeasedGpus:
    """Serving's GPUs come from the scheduler's lease table, like jobs' and notebooks' (one board)."""

    def __init__(self, scheduler: SchedulerService) -> None:
        self.scheduler = scheduler
        # CUDA's numbering then matches NVML's, which the inventory (and so the lease) uses
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")

    def take(self, holder: str) -> str | None:
        try:
            (index,) = self.scheduler.lease_gpus(holder, 1)
        except Conflict:
            return None
        gpu = next(g for g in self.scheduler.inventory() if g.index == index)
        return "cpu" if gpu.simulated else f"cuda:{index}"

    def give_back(self, holder: str) -> None:
        self.scheduler.release_gpus(holder)


@dataclass(frozen=True)
class Announcement:
    pid: int
    url: str
    started: float


def running_appliance(settings: Settings) -> Announcement | None:
    """The appliance serving this home, if one is alive."""
    path = settings.home / "appliance.json"
    try:
        data = json.loads(path.read_text())
        ann = Announcement(int(data["pid"]), str(data["url"]), float(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if ann.pid == os.getpid() or process_start(ann.pid) is None:
        return None
    return ann


class Appliance:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: Any = None
        self.url: str | None = None
        self.token = services.home.token()
        self.serving = ServingService(
            services.registry,
            self.settings.serving,
            PredictionLog(
                services.home.tables / "predictions",
                flush_s=self.settings.serving.log_flush_s,
                max_buffer=self.settings.serving.log_max_buffer,
            ),
            features=lambda rows, refs: services.features.get_online_features(
                rows, refs, full_feature_names=True
            ),
            placer=LeasedGpus(services.scheduler),
        )

    # -- loops -----------------------------------------------------------------

    def reconcile_once(self, now: float | None = None) -> dict[str, list[int]]:
        """One pass of every loop; returns what changed (tests call this directly)."""
        crashed = self.services.tracking.reap_crashed(
            now=time.time() if now is None else now,
            this_host=socket.gethostname(),
            process_start=process_start,
            crash_after_s=self.settings.crash_after_s,
        )
        if crashed:
            log.info("runs marked crashed: %s", crashed)
        return {"crashed": crashed}

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile_once()
            except Exception:  # a loop must survive a bad pass; the next one retries
                log.exception("reconcile pass failed")
            self._stop.wait(self.settings.reap_every_s)

    def schedule_once(self) -> dict[str, list[int]]:
        """One pass of the job loops: the scheduler, then what drives jobs (sweeps, notebooks)."""
        changed = self.services.scheduler.reconcile_once()
        for service in (self.services.sweeps, self.services.notebooks):
            changed.update(service.reconcile_once())
        return changed

    def _schedule_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.schedule_once()
            except Exception:  # as above: the next tick retries
                log.exception("scheduler pass failed")
            # woken at once by a submit, cancel or retry in this process (the API, the TUI)
            self.services.scheduler.wait_for_work(self.settings.scheduler.tick_s)

    def start_loops(self) -> None:
        self.serving.start()
        for target, name in ((self._loop, "mlbox-reconcile"), (self._schedule_loop, "mlbox-scheduler")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    # -- HTTP ------------------------------------------------------------------

    def _make_server(self) -> Any:
        import uvicorn

        from mlbox.api.app import create_app

        app = create_app(self.services, token=self.token, serving=self.serving)
        # IPPROTO_TCP said outright: asyncio sets TCP_NODELAY on accepted connections only for a
        # socket whose protocol is TCP; with 0, every keep-alive answer waited ~40 ms on Nagle
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.host.strip("[]"), self.settings.port))
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        server = uvicorn.Server(config)
        self._server = server
        self._socket = sock
        return server

    def _announce(self) -> None:
        path = self.services.home.appliance_path
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "url": self.url, "started": time.time()}))
        os.replace(tmp, path)

    def _unannounce(self) -> None:
        path = self.services.home.appliance_path
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass

    def start_http(self) -> str:
        """Serve the API from a background thread; returns its URL once it accepts."""
        server = self._make_server()
        t = threading.Thread(
            target=lambda: server.run(sockets=[self._socket]), name="mlbox-http", daemon=True
        )
        t.start()
        self._threads.append(t)
        deadline = time.monotonic() + 10
        while not server.started and t.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            raise RuntimeError("the HTTP API did not start")
        self._announce()
        assert self.url is not None
        return self.url

    def serve_forever(self, on_ready: Any = None) -> None:
        """`mlbox up`: loops in a thread, HTTP in the foreground until SIGINT/SIGTERM."""
        import signal

        self.start_loops()
        server = self._make_server()

        # uvicorn captures SIGINT/SIGTERM while serving, shuts down gracefully,
        # then re-raises them into the handlers found before: make those no-ops
        # so the `finally` below still runs.
        signal.signal(signal.SIGINT, lambda signum, frame: None)
        signal.signal(signal.SIGTERM, lambda signum, frame: None)

        async def _ready_watch() -> None:
            import asyncio

            while not server.started:
                await asyncio.sleep(0.01)
            self._announce()
            if self.serving.predlog is not None:
                self.serving.predlog.warm()
            if on_ready:
                on_ready(self.url)

        import asyncio

        async def main() -> None:
            watcher = asyncio.create_task(_ready_watch())
            await server.serve(sockets=[self._socket])
            watcher.cancel()

        try:  # on uvloop when installed, as uvicorn's own `Server.run` would choose
            import uvloop

            loop_factory: Any = uvloop.new_event_loop
        except ImportError:
            loop_factory = None
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(main())
        finally:
            self.stop()

    def stop(self) -> None:
        self._stop.set()
        self.services.scheduler.wake.set()
        if self._server is not None:
            self._server.should_exit = True
        for t in self._threads:
            t.join(timeout=5)
        self.serving.close()  # drains the batchers, then flushes the prediction log
        self._unannounce()
