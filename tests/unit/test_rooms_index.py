"""streaming.gateway.fastpath.rooms: the client manager that indexes each client's rooms behaves as python-socketio's
own manager, operation for operation, and is only put over the library's default one before any client."""
from __future__ import annotations

import random

import socketio

from streaming.gateway.fastpath.rooms import IndexedManager, index_rooms

NAMESPACES = ("/", "/other")


def managers() -> tuple[socketio.Manager, IndexedManager]:
    library, indexed = socketio.Manager(), IndexedManager()
    for manager in (library, indexed):
        manager.set_server(socketio.Server(async_mode="threading"))
    return library, indexed


def state(manager: socketio.Manager) -> dict:
    """What the rest of python-socketio reads: rooms and their members, callbacks, pending connects/disconnects."""
    return {
        "rooms": {ns: {room: dict(members) for room, members in rooms.items()} for ns, rooms in manager.rooms.items()},
        "callbacks": set(manager.callbacks),
        "pending": (manager.pending_connect, manager.pending_disconnect),
    }


def test_random_joins_leaves_and_disconnects_leave_the_same_state_as_the_librarys_manager() -> None:
    rng = random.Random(7)
    library, indexed = managers()
    clients: dict[str, tuple[str, str]] = {}  # eio sid -> (namespace, sid), the same in both managers
    for step in range(3000):
        action = rng.choice(["connect", "connect", "join", "join", "join", "leave", "disconnect", "callback",
                             "pre_disconnect", "close"])
        if action == "connect" or not clients:
            eio_sid, namespace = f"eio{step}", rng.choice(NAMESPACES)
            sid = library.connect(eio_sid, namespace)
            # the same sid in both: python-socketio generates it, so hand the library's to the indexed one
            indexed.basic_enter_room(sid, namespace, None, eio_sid=eio_sid)
            indexed.basic_enter_room(sid, namespace, sid, eio_sid=eio_sid)
            clients[eio_sid] = (namespace, sid)
            continue
        namespace, sid = clients[rng.choice(sorted(clients))]
        room = f"ticker:{rng.randrange(6)}"
        if action == "join":
            for manager in (library, indexed):
                manager.enter_room(sid, namespace, room)
        elif action == "leave":
            for manager in (library, indexed):
                manager.leave_room(sid, namespace, room)
        elif action == "close":
            for manager in (library, indexed):
                manager.close_room(room, namespace)
        elif action == "callback":
            for manager in (library, indexed):
                manager._generate_ack_id(sid, lambda *args: None)
        elif action == "pre_disconnect":
            for manager in (library, indexed):
                manager.pre_disconnect(sid, namespace)
        else:
            for manager in (library, indexed):
                manager.disconnect(sid, namespace)
            del clients[next(e for e, client in clients.items() if client == (namespace, sid))]
        for ns, sid_ in clients.values():
            assert sorted(indexed.get_rooms(sid_, ns), key=str) == sorted(library.get_rooms(sid_, ns), key=str)
        assert state(indexed) == state(library), f"step {step}: {action}"
    assert any(library.rooms.values()), "the run left clients and rooms to compare"


def test_a_disconnect_does_not_test_every_room() -> None:
    """The point of the index: a client leaving looks at its own rooms only, not at the other clients' rooms."""
    _, indexed = managers()
    for n in range(200):
        sid = f"sid{n}"
        indexed.basic_enter_room(sid, "/", None, eio_sid=f"eio{n}")
        indexed.basic_enter_room(sid, "/", sid, eio_sid=f"eio{n}")
    indexed.enter_room("sid0", "/", "ticker:BTCUSDT")

    class Untouchable(dict):
        def items(self):  # type: ignore[override]
            raise AssertionError("scanned every room")

        copy = items

    indexed.rooms["/"] = Untouchable(indexed.rooms["/"])
    indexed.disconnect("sid0", "/")
    assert "sid0" not in indexed.rooms["/"][None] and "ticker:BTCUSDT" not in indexed.rooms["/"]
    assert indexed.get_rooms("sid1", "/") == ["sid1"]


def test_it_replaces_only_the_librarys_default_manager_before_any_client() -> None:
    server = socketio.Server(async_mode="threading")
    assert index_rooms(server) and type(server.manager) is IndexedManager and server.manager.server is server
    assert not index_rooms(server), "not twice"

    class Another(socketio.Manager):  # e.g. a message queue's
        pass

    other = socketio.Server(async_mode="threading", client_manager=Another())
    assert not index_rooms(other) and type(other.manager) is Another
    started = socketio.Server(async_mode="threading")
    started.manager_initialized = True  # a client has connected: its rooms are in the library's manager
    assert not index_rooms(started) and type(started.manager) is socketio.Manager
