"""Accepting connections: every one waiting, each time the listening socket is readable.

uvloop's server (libuv underneath) accepts one connection per turn of the event
loop. Idle, a turn takes microseconds and nobody notices; saturated by
scoring requests, a turn takes 5-25 ms, and a burst of new connections waits
in the kernel's accept queue at that pace: measured at twice the fast model's
capacity, 178 connections queued and drained at about 100 a second, so the
first request on half of 256 new connections waited 0.3-0.7 s before the
server read it (``strace``: one ``accept4`` after each ``epoll_pwait``). An
`Acceptor` takes the whole queue in one turn and hands each connection to
the loop's transport (``loop.connect_accepted_socket``), so a new client
waits what one already connected waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

MAX_PER_TURN = 512
"""The most connections taken in one turn: a flood of them cannot starve the requests of the
connections already open for longer than accepting this many takes (a few milliseconds)."""


class Acceptor:
    """Listens on ``sock`` and opens a transport with ``factory``'s protocol for every connection
    waiting each time it is readable. Stands in for the loop's server object where uvicorn keeps
    its servers (``close`` and ``wait_closed``)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        factory: Callable[[], asyncio.Protocol],
        backlog: int,
    ) -> None:
        self.loop, self.sock, self.factory = loop, sock, factory
        self.opening: set[asyncio.Task[None]] = set()
        sock.setblocking(False)
        sock.listen(backlog)
        loop.add_reader(sock.fileno(), self._accept)
        self._listening = True

    def _accept(self) -> None:
        for _ in range(MAX_PER_TURN):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:  # that client left while queued: take the next
                continue
            except OSError:  # out of descriptors: leave the rest queued until some close
                return
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self.loop.create_task(self._open(conn))
            self.opening.add(task)
            task.add_done_callback(self.opening.discard)

    async def _open(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.factory, conn)
        except OSError:  # the client left before its transport was made
            conn.close()

    def close(self) -> None:
        """Stop accepting; the socket itself is closed by its owner."""
        if self._listening:
            self._listening = False
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(self.sock.fileno())

    async def wait_closed(self) -> None:
        """Until connections accepted before `close` have their transports."""
        if self.opening:
            await asyncio.gather(*self.opening, return_exceptions=True)
