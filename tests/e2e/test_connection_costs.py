"""What each WebSocket client costs the server in file descriptors: one, under either async mode."""
from __future__ import annotations

import os

import websocket

from tests.helpers import wait_for

CLIENTS = 20


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_one_file_descriptor_per_websocket_client(start_service) -> None:
    service = start_service()
    url = service.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    before = open_files(service.proc.pid)
    clients = []
    try:
        for _ in range(CLIENTS):
            ws = websocket.create_connection(url, timeout=5)
            assert ws.recv().startswith("0")
            ws.send("40")
            clients.append(ws)
        wait_for(lambda: service.get("/stats").json()["data"]["connected_clients"] == CLIENTS, timeout=10)
        grown = open_files(service.proc.pid) - before
        assert grown <= CLIENTS + 3, f"{grown} more descriptors for {CLIENTS} clients"
    finally:
        for ws in clients:
            ws.close()
    wait_for(lambda: service.get("/stats").json()["data"]["connected_clients"] == 0, timeout=10)
