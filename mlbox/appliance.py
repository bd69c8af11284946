"""The appliance: the composition root that runs mlbox's loops and HTTP API.

`mlbox up` runs it headless; the TUI embeds it in its own process. Its loops
are reconciliation loops over the database (a crashed run is found by looking,
not by being told), so killing the appliance at any moment loses nothing:
the next start looks again.

One home has one appliance: before anything starts it takes the home's lock
(`mlbox.store.home.Home.claim_appliance`, held until `Appliance.stop` or the
process ends), so a second ``mlbox up`` or TUI on the same home is refused,
even when both start at the same moment. Once listening it announces itself
in ``$MLBOX_HOME/appliance.json`` (pid, address; `Home.running_appliance`
reads it), so a second front end can work beside it instead.

What runs is declared by the services (`mlbox.services.Services`): each says
which loop reconciles it and what starts and stops with the appliance.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from mlbox.services import Changes, Services
from mlbox.serving.service import ServingService
from mlbox.store.errors import Conflict
from mlbox.store.home import ApplianceLock

log = logging.getLogger("mlbox.appliance")


def exposure_warning(host: str, require_token: bool) -> str | None:
    """What ``mlbox up`` warns of when it listens beyond loopback (``MLBOX_HOST=0.0.0.0``): the
    routes anyone who reaches the port may call without the token. None on loopback.

    The Host check stops a browser's page (DNS rebinding), not a client that reaches the port
    and writes its own Host header, so binding another interface opens these routes to it."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return None
    try:
        if ipaddress.ip_address(name).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may resolve to any interface
    where = "every interface" if name in ("0.0.0.0", "::", "") else host
    if require_token:
        return (
            f"warning: listening on {host} ({where}), beyond this machine; scoring, /metrics and"
            " model metadata need the token (MLBOX_SERVING_REQUIRE_TOKEN); health and the API schema"
            " stay open"
        )
    return (
        f"warning: listening on {host} ({where}), beyond this machine: anyone who can reach it may,"
        " without the token, score every served model, read /metrics and read model metadata (names,"
        " versions, signatures); set MLBOX_SERVING_REQUIRE_TOKEN=1 to make those need the token too"
    )


class Appliance:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: Any = None
        self.url: str | None = None
        self.token = services.home.token()
        self._lock: ApplianceLock | None = None

    def claim(self) -> None:
        """Take the home for this appliance (`Conflict` naming the one that has it); idempotent."""
        if self._lock is None:
            self._lock = self.services.home.claim_appliance()

    @property
    def serving(self) -> ServingService:
        """The service scoring the served models (the TUI's Serving screen reads its statistics)."""
        return self.services.serving

    # -- loops -----------------------------------------------------------------

    def reconcile_once(self, now: float | None = None) -> Changes:
        """One pass of the housekeeping loop (crashed runs); returns what changed (tests call this)."""
        return self.services.reconcile("housekeeping", now)

    def schedule_once(self) -> Changes:
        """One pass of the job loop: the scheduler, then what drives jobs (sweeps, notebooks)."""
        return self.services.reconcile("jobs")

    def _loop(self, pass_once: Callable[[], object], name: str, wait: Callable[[], object]) -> None:
        while not self._stop.is_set():
            try:
                pass_once()
            except Exception:  # a loop must survive a bad pass; the next one retries
                log.exception("%s pass failed", name)
            wait()

    def start_loops(self) -> None:
        self.claim()
        for _name, spec, svc in self.services.declared():
            if spec.start is not None:
                spec.start(svc)
        loops = (
            (self.reconcile_once, "mlbox-reconcile", lambda: self._stop.wait(self.settings.reap_every_s)),
            # woken at once by a submit, cancel or retry in this process (the API, the TUI)
            (
                self.schedule_once,
                "mlbox-scheduler",
                lambda: self.services.scheduler.wait_for_work(self.settings.scheduler.tick_s),
            ),
        )
        for pass_once, name, wait in loops:
            t = threading.Thread(target=self._loop, args=(pass_once, name, wait), name=name, daemon=True)
            t.start()
            self._threads.append(t)

    # -- HTTP ------------------------------------------------------------------

    def _make_server(self) -> Any:
        import uvicorn

        from mlbox.api.app import create_app
        from mlbox.api.drain import DrainingServer

        app = create_app(self.services, token=self.token)
        # IPPROTO_TCP said outright: asyncio sets TCP_NODELAY on accepted connections only for a
        # socket whose protocol is TCP; with 0, every keep-alive answer waited ~40 ms on Nagle
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.settings.host.strip("[]"), self.settings.port))
        except OSError as exc:
            sock.close()
            raise Conflict(
                f"cannot listen on {self.settings.host} port {self.settings.port}: {exc.strerror or exc};"
                " choose another with --port / MLBOX_PORT (or --host / MLBOX_HOST)",
                field="port",
            ) from None
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        serving = self.settings.serving
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # no X-Forwarded-* rewriting: nothing reads the client's address, and a local proxy
            # could spoof it; one ASGI layer less on every request
            proxy_headers=False,
            limit_concurrency=serving.max_connections,
            timeout_graceful_shutdown=max(1, math.ceil(serving.drain_s)),
        )
        # on SIGTERM, scoring is drained before connections close (an answer or a 503, no reset)
        server = DrainingServer(
            config,
            admission=app.state.admission,
            drain_s=serving.drain_s,
            # refused at the doorstep only while scoring is open (else the token is checked first)
            accepted_hosts=None if serving.require_token else self.settings.accepted_hosts,
        )
        self._server = server
        self._socket = sock
        return server

    def _announce(self) -> None:
        assert self.url is not None
        self.services.home.announce(self.url)

    def start_http(self) -> str:
        """Serve the API from a background thread; returns its URL once it accepts."""
        self.claim()
        try:
            server = self._make_server()
        except BaseException:
            if self._lock is not None:  # the home stays held (the loops run): say there is no API
                self._lock.mark_no_api()
            raise
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

        self.claim()
        try:
            server = self._make_server()  # before the loops: a taken port starts nothing
        except BaseException:
            self._release()
            raise
        self.start_loops()

        # uvicorn captures SIGINT/SIGTERM while serving, shuts down gracefully,
        # then re-raises them into the handlers found before: make those no-ops
        # so the `finally` below still runs.
        signal.signal(signal.SIGINT, lambda signum, frame: None)
        signal.signal(signal.SIGTERM, lambda signum, frame: None)

        async def _ready_watch() -> None:
            import asyncio

            # announced (and on_ready called) once every aliased model is loaded or failed, so
            # the first readiness probe of a client that waited for the announcement says yes
            while not server.started or not self.services.serving.ready:
                await asyncio.sleep(0.01)
            serving = self.services.serving
            if serving.predlog is not None and serving.settings.log_predictions:
                serving.predlog.warm()
                await asyncio.to_thread(serving.predlog.warmed.wait, 10)
            # what start-up made (modules, models, the log's pyarrow) frozen out of the collector: a
            # full collection scanning it paused scoring ~115 ms every ~10 s of 100-row traffic
            gc.collect()
            gc.freeze()
            self._announce()
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
        for _name, spec, svc in self.services.declared():
            if spec.stop is not None:
                spec.stop(svc)  # serving drains its batchers, then flushes the prediction log
        self.services.home.unannounce()
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
