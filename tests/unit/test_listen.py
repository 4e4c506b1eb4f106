"""streaming.runtime.server.listen: the socket the entry point binds before it imports the app."""
from __future__ import annotations

import socket

import pytest

from streaming.runtime.server import listen


def test_the_socket_listens_at_once_and_queues_connections_before_any_accept() -> None:
    sock = listen("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        waiting = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(3)]
        accepted = [sock.accept()[0] for _ in waiting]  # completed by the kernel before anything accepted them
        for conn in waiting + accepted:
            conn.close()
    finally:
        sock.close()


def test_a_second_instance_on_the_port_fails_instead_of_sharing_it() -> None:
    sock = listen("127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            listen("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()
