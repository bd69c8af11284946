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
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from mlbox.serving.admission import Admission

LAG_PROBE_S = 0.005
"""How often the event loop's lag is measured while scoring requests are being answered."""

IDLE_PROBE_S = 0.1
"""How often it is measured while none is: an idle appliance should not wake 200 times a second
(1.6 % of a core, measured), and the first requests of a burst find the lag of at most this ago."""

GRACE_S = 0.3
"""The least time spent draining: requests already on their way (in socket buffers, on keep-alive
connections) arrive, are read and answered with ``Connection: close`` before connections close."""


async def watch_loop_lag(admission: Admission) -> None:
    """Tell ``admission`` how late this event loop wakes a timer: every `LAG_PROBE_S` while it
    answers scoring requests, every `IDLE_PROBE_S` otherwise (see `mlbox.serving.admission`: a
    loop running late is time requests wait before the door)."""
    loop = asyncio.get_running_loop()
    while True:
        every_s = LAG_PROBE_S if admission.inflight else IDLE_PROBE_S
        due = loop.time() + every_s
        await asyncio.sleep(every_s)
        admission.observe_lag(max(0.0, loop.time() - due))


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose shutdown drains the scoring path first (see module); while it
    serves, it feeds the admission its event loop's lag (`watch_loop_lag`)."""

    def __init__(self, config: uvicorn.Config, *, admission: Admission, drain_s: float) -> None:
        super().__init__(config)
        self.admission = admission
        self.drain_s = drain_s
        self._lag_probe: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
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
