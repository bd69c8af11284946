"""The offline guard itself must work, or every other test proves nothing."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import NetworkAccessError


def test_non_loopback_connection_is_refused() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(NetworkAccessError):
            s.connect(("203.0.113.7", 80))  # TEST-NET-3: never routable
    finally:
        s.close()


def test_loopback_connection_is_allowed() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket()
    try:
        client.connect(server.getsockname())
    finally:
        client.close()
        server.close()
