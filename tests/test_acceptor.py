"""`mlbox.api.acceptor.Acceptor`: connections waiting in the kernel's queue are all taken in one
turn of the event loop (uvloop's own server takes one a turn; measured, see the module)."""

from __future__ import annotations

import asyncio
import socket
from typing import ClassVar

import uvloop

from mlbox.api.acceptor import Acceptor


class _Counted(asyncio.Protocol):
    made: ClassVar[list[asyncio.BaseTransport]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.append(transport)


async def _accepted_within(turns: int, waiting: int) -> int:
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    acceptor = Acceptor(loop, listener, _Counted, backlog=1024)
    port = listener.getsockname()[1]
    # blocking connects: the kernel completes each handshake into the queue while the loop waits
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(waiting)]
    for _ in range(turns):
        await asyncio.sleep(0)
    accepted = len(_Counted.made)
    acceptor.close()
    await acceptor.wait_closed()
    for transport in _Counted.made:
        transport.close()
    for client in clients:
        client.close()
    listener.close()
    await asyncio.sleep(0)
    return accepted


def test_a_queue_of_new_connections_is_taken_in_a_few_turns_of_the_loop_not_one_a_turn() -> None:
    """200 connections queued while the loop was busy all have transports after 5 turns; uvloop's
    server (``loop.create_server``) had 5 of them (one accept per turn)."""
    _Counted.made = []
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(_accepted_within(turns=5, waiting=200)) == 200


def test_closing_stops_accepting_and_leaves_the_socket_to_its_owner() -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        acceptor = Acceptor(loop, listener, _Counted, backlog=16)
        acceptor.close()
        acceptor.close()  # twice is harmless
        late = socket.create_connection(listener.getsockname())  # queued, never taken
        for _ in range(5):
            await asyncio.sleep(0)
        await acceptor.wait_closed()
        fileno = listener.fileno()
        late.close()
        listener.close()
        return len(_Counted.made), fileno

    _Counted.made = []
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        made, fileno = runner.run(main())
    assert made == 0 and fileno >= 0
