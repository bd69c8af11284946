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

GRACE_S = 0.3
"""The least time spent draining: requests already on their way (in socket buffers, on keep-alive
connections) arrive, are read and answered with ``Connection: close`` before connections close."""


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose shutdown drains the scoring path first (see module)."""

    def __init__(self, config: uvicorn.Config, *, admission: Admission, drain_s: float) -> None:
        super().__init__(config)
        self.admission = admission
        self.drain_s = drain_s

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.admission.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_s
        await asyncio.sleep(min(GRACE_S, self.drain_s))
        while self.admission.inflight and loop.time() < deadline and not self.force_exit:
            await asyncio.sleep(0.01)
        await super().shutdown(sockets)
