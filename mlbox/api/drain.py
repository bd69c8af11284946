"""The HTTP server of the appliance: uvicorn, stopped by draining instead of cutting.

uvicorn's own shutdown closes the listening socket and every idle keep-alive
connection at once. A client that was sending its next request on such a
connection at that moment gets a reset instead of an answer, which is what a
SIGTERM under scoring load produced. `DrainingServer` first drains: the
app's `mlbox.serving.admission.Admission` refuses new scoring requests (503,
``Retry-After``) and every answer says ``Connection: close``
(`mlbox.api.serving.ScoringFastPath`), so connections end after an answer;
requests already admitted are scored to the end (within ``drain_s``). Only
then does uvicorn's shutdown run, with no request left in flight to cut.

It also refuses at the doorstep (`refusing_protocol`): once a scoring
request's headers are parsed, and before uvicorn builds its task and ASGI
call, the admission is asked whether it would refuse it; if so the 503 is
written at once, in one write, and the body is dropped as it arrives. Under
a fast model's overload most requests are refused, and through the ASGI
path a refusal cost what an answer costs in uvicorn and Litestar (a task, the
scope, two writes: 0.15 ms of CPU a request, profiled), which is what let
the event loop fall behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import Iterable
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from mlbox.api.acceptor import Acceptor
from mlbox.api.security import accepted_names, check_host
from mlbox.api.serving import ScoringFastPath, _model_key
from mlbox.serving.admission import Admission
from mlbox.serving.codecs import encode_json
from mlbox.store.errors import MlboxError

LAG_PROBE_S = 0.005
"""How often the event loop's lag is measured while scoring requests are being answered."""

IDLE_PROBE_S = 0.1
"""How often it is measured while none is: an idle appliance should not wake 200 times a second
(1.6 % of a core, measured), and the first requests of a burst find the lag of at most this ago."""

GRACE_S = 0.3
"""The least time spent draining: requests already on their way (in socket buffers, on keep-alive
connections) arrive, are read and answered with ``Connection: close`` before connections close."""


async def watch_loop_lag(admission: Admission) -> None:
    """Tell ``admission`` how late this event loop wakes a timer, and the process's CPU seconds
    per second meanwhile (late and busy: saturated by its own work; late and idle: the machine
    is busy elsewhere): every `LAG_PROBE_S` while it answers scoring requests or admits only a
    share of them, every `IDLE_PROBE_S` otherwise, woken early by the first request admitted
    (see `mlbox.serving.admission`: a loop running late is time requests wait before the door)."""
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()
    admission.on_first = woken.set
    woke, cpu = loop.time(), time.process_time()
    while True:
        if admission.inflight or admission.share < 1.0:
            due = loop.time() + LAG_PROBE_S
            await asyncio.sleep(LAG_PROBE_S)
        else:  # idle: a long sleep, cut short by the first request admitted
            woken.clear()
            due = loop.time() + IDLE_PROBE_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), IDLE_PROBE_S)
        now, cpu_now = loop.time(), time.process_time()
        admission.observe_lag(max(0.0, now - due), (cpu_now - cpu) / max(now - woke, 1e-6))
        woke, cpu = now, cpu_now


def refused_answer(
    admission: Admission, names: frozenset[str], method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]
) -> bytes | None:
    """The whole HTTP answer (503, ``Retry-After``) to a request the admission refuses now, from
    its request line and headers alone; None for anything else (not a scoring POST, a Host that
    is not served, an encoded path, a draining server: the ASGI path answers those)."""
    if method != b"POST" or admission.draining:
        return None
    path = url.partition(b"?")[0]
    if b"%" in path:
        return None
    route = ScoringFastPath.match(path.decode("latin-1"))
    if route is None:
        return None
    host = next((v for k, v in headers if k == b"host"), None)
    try:
        check_host(None if host is None else host.decode("latin-1"), names)
    except MlboxError:
        return None
    refused = admission.door(_model_key(route[1] or "/invocations", route[2]), time.perf_counter())
    if refused is None:
        return None
    key = (refused.message, refused.retry_after_s)
    answer = _ANSWERS.get(key)
    if answer is None:
        if len(_ANSWERS) > 64:
            _ANSWERS.clear()
        body = encode_json(refused.to_dict())
        answer = _ANSWERS[key] = b"".join(
            (
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: ",
                str(len(body)).encode(),
                b"\r\nretry-after: ",
                str(refused.retry_after_s).encode(),
                b"\r\n\r\n",
                body,
            )
        )
    return answer


_ANSWERS: dict[tuple[str, int], bytes] = {}
"""The doorstep's answers by message: under overload one reason repeats thousands of times."""


class _Answered:
    """The request cycle of a request answered at the doorstep: uvicorn's parser callbacks see
    its response complete, so they drop the body, and the next request starts as usual."""

    response_complete = True
    keep_alive = True
    disconnected = False

    @property
    def message_event(self) -> _Answered:
        return self  # uvicorn sets it when the connection is lost: nobody waits on it

    def set(self) -> None:
        pass


def refusing_protocol(admission: Admission, accepted_hosts: Iterable[str]) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, refusing at the doorstep what ``admission`` refuses (module)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    names = accepted_names(accepted_hosts)
    answered = _Answered()

    class RefusingProtocol(HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            cycle: Any = self.cycle
            if cycle is None or cycle.response_complete:  # not behind a pipelined request
                answer = refused_answer(admission, names, self.parser.get_method(), self.url, self.headers)
                if answer is not None:
                    self.cycle = answered  # type: ignore[assignment]
                    self.transport.write(answer)
                    self.on_response_complete()
                    return
            super().on_headers_complete()

    return RefusingProtocol


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose shutdown drains the scoring path first (see module); while it
    serves, it feeds the admission its event loop's lag (`watch_loop_lag`), and with
    ``accepted_hosts`` it refuses scoring requests at the doorstep (`refusing_protocol`)."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        admission: Admission,
        drain_s: float,
        accepted_hosts: Iterable[str] | None = None,
    ) -> None:
        if accepted_hosts is not None and config.http == "auto":
            # without httptools: uvicorn's h11 protocol, refusing after the body as before
            with contextlib.suppress(ImportError):
                config.http = refusing_protocol(admission, accepted_hosts)
        super().__init__(config)
        self.admission = admission
        self.drain_s = drain_s
        self._lag_probe: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up, but the sockets it is given are served by `Acceptor`s, which take
        every waiting connection each turn of the loop (uvloop's server takes one)."""
        if not sockets:
            await super().startup(sockets)
        else:
            await self.lifespan.startup()
            if self.lifespan.should_exit:
                sys.exit(STARTUP_FAILURE)
            config, state, app_state = self.config, self.server_state, self.lifespan.state

            def protocol() -> asyncio.Protocol:
                make: Any = config.http_protocol_class  # uvicorn types it as asyncio.Protocol
                return make(config=config, server_state=state, app_state=app_state)

            loop = asyncio.get_running_loop()
            acceptors: Any = [Acceptor(loop, sock, protocol, config.backlog) for sock in sockets]
            self.servers = acceptors  # uvicorn calls close() and wait_closed() on them
            self.started = True
        self._lag_probe = asyncio.get_running_loop().create_task(watch_loop_lag(self.admission))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._lag_probe is not None:
            self._lag_probe.cancel()
        self.admission.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_s
        await asyncio.sleep(min(GRACE_S, self.drain_s))
        while self.admission.inflight and loop.time() < deadline and not self.force_exit:
            await asyncio.sleep(0.01)
        await super().shutdown(sockets)
