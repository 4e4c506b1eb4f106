"""streaming.gateway.fastpath.writers: what is queued for a client goes out in order, on demand, and the end closes
the socket.
"""
from __future__ import annotations

import engineio
from engineio import packet

from streaming.gateway.fastpath.writers import MESSAGES_PER_WRITE, OnDemandWriter


class FakeWebSocket:
    def __init__(self, fail_on: str | None = None) -> None:
        self.sent: list[str] = []
        self.closed = False
        self.fail_on = fail_on

    def send(self, data: str) -> None:
        if data == self.fail_on:
            raise OSError("broken pipe")
        self.sent.append(data)

    def close(self) -> None:
        self.closed = True


def setup(fail_on: str | None = None, kind: type[FakeWebSocket] = FakeWebSocket):
    server = engineio.Server(async_mode="threading")
    sock = engineio.socket.Socket(server, "sid")
    spawned: list = []
    ws = kind(fail_on)
    return sock, ws, OnDemandWriter(sock, ws, spawned.append), spawned


def run(spawned: list) -> None:
    while spawned:
        spawned.pop(0)()


def test_what_was_queued_before_start_and_after_goes_out_in_order_on_demand() -> None:
    sock, ws, writer, spawned = setup()
    sock.send(packet.Packet(packet.OPEN, {"sid": "sid"}))
    writer.start()
    assert len(spawned) == 1  # woken by the packet already queued
    sock.send(packet.Packet(packet.MESSAGE, "40"))
    assert len(spawned) == 1  # one drain at a time
    run(spawned)
    assert ws.sent == ['0{"sid":"sid"}', "440"] and sock.queue.qsize() == 0
    assert spawned == []  # nothing queued: nothing runs
    sock.send(packet.Packet(packet.PING))
    run(spawned)
    assert ws.sent[-1] == "2"


def test_the_end_marker_closes_the_websocket_and_releases_join() -> None:
    sock, ws, writer, spawned = setup()
    writer.start()
    sock.send(packet.Packet(packet.MESSAGE, "41"))
    sock.queue.put(None)  # what python-engineio's handler puts when the connection ends
    run(spawned)
    assert ws.sent == ["441"] and ws.closed
    writer.join(timeout=0.1)  # returns at once
    sock.send(packet.Packet(packet.PING))
    assert spawned == []  # finished: nothing is sent any more


def test_a_failed_send_ends_the_connection_like_python_engineios_writer() -> None:
    sock, ws, writer, spawned = setup(fail_on="2")
    writer.start()
    sock.send(packet.Packet(packet.PING))
    sock.send(packet.Packet(packet.MESSAGE, "after"))
    run(spawned)
    assert ws.closed and ws.sent == []


class BatchingWebSocket(FakeWebSocket):
    """A WebSocket that can send several messages in one write (the fast path's)."""

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__(fail_on)
        self.writes: list[list[str]] = []

    def send_many(self, messages: list[str]) -> None:
        if self.fail_on in messages:
            raise OSError("broken pipe")
        self.writes.append(list(messages))
        self.sent.extend(messages)


def batching(fail_on: str | None = None):
    return setup(fail_on, BatchingWebSocket)


def test_what_is_queued_goes_out_in_writes_of_several_messages_in_order() -> None:
    sock, ws, writer, spawned = batching()
    writer.start()
    count = MESSAGES_PER_WRITE + 3
    for n in range(count):
        sock.send(packet.Packet(packet.MESSAGE, f"2[{n}]"))
    run(spawned)
    assert ws.sent == [f"42[{n}]" for n in range(count)] and sock.queue.qsize() == 0
    assert [len(write) for write in ws.writes] == [MESSAGES_PER_WRITE, 3]


def test_the_end_marker_after_messages_sends_them_then_closes() -> None:
    sock, ws, writer, spawned = batching()
    writer.start()
    sock.send(packet.Packet(packet.MESSAGE, "a"))
    sock.send(packet.Packet(packet.MESSAGE, "b"))
    sock.queue.put(None)
    sock.send(packet.Packet(packet.MESSAGE, "after the end"))
    run(spawned)
    assert ws.writes == [["4a", "4b"]] and ws.closed


def test_a_failed_write_of_several_ends_the_connection() -> None:
    sock, ws, writer, spawned = batching(fail_on="4b")
    writer.start()
    sock.send(packet.Packet(packet.MESSAGE, "a"))
    sock.send(packet.Packet(packet.MESSAGE, "b"))
    run(spawned)
    assert ws.closed and ws.sent == []
    sock.send(packet.Packet(packet.MESSAGE, "c"))
    assert spawned == []


class OfferingWebSocket(BatchingWebSocket):
    """The fast path's WebSocket: it can also take messages past the queue, when its socket has room now."""

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__(fail_on)
        self.room = True
        self.offered: list[str] = []

    def offer(self, messages: list[str]) -> bool:
        if not self.room:
            return False
        self.offered.extend(messages)
        self.sent.extend(messages)
        return True


def offering():
    return setup(None, OfferingWebSocket)


def test_with_nothing_queued_a_packet_goes_straight_to_the_socket_without_a_green_thread() -> None:
    sock, ws, writer, spawned = offering()
    writer.start()
    run(spawned)  # the start's own wake: nothing queued
    sock.send(packet.Packet(packet.MESSAGE, "40"))
    sock.send(packet.Packet(packet.MESSAGE, '2["subscribed",{}]'))
    assert spawned == [] and sock.queue.qsize() == 0
    assert ws.offered == ["440", '42["subscribed",{}]'] and ws.writes == []


def test_a_socket_without_room_queues_and_what_follows_waits_for_the_writer_in_order() -> None:
    sock, ws, writer, spawned = offering()
    writer.start()
    run(spawned)
    ws.room = False
    sock.send(packet.Packet(packet.MESSAGE, "a"))
    ws.room = True  # room again, but "a" is still queued: "b" must not pass it
    sock.send(packet.Packet(packet.MESSAGE, "b"))
    assert ws.offered == [] and len(spawned) == 1
    run(spawned)
    assert ws.sent == ["4a", "4b"] and ws.writes == [["4a", "4b"]]
    sock.send(packet.Packet(packet.MESSAGE, "c"))
    assert ws.offered == ["4c"] and spawned == [], "drained: straight to the socket again"


def test_what_was_queued_before_start_goes_straight_to_the_socket_at_the_start_in_one_write() -> None:
    sock, ws, writer, spawned = offering()
    sock.send(packet.Packet(packet.OPEN, {"sid": "sid"}))  # the connect answer, queued before the upgrade
    sock.send(packet.Packet(packet.MESSAGE, "40"))
    writer.start()
    assert spawned == [] and sock.queue.qsize() == 0, "no writer green thread to wait for"
    assert ws.offered == ['0{"sid":"sid"}', "440"] and ws.writes == []
    sock.send(packet.Packet(packet.MESSAGE, "a"))
    assert ws.offered[-1] == "4a" and spawned == []


def test_what_was_queued_before_start_without_room_goes_first_and_without_offer_close_the_end_waits() -> None:
    sock, ws, writer, spawned = offering()
    sock.send(packet.Packet(packet.OPEN, {"sid": "sid"}))
    ws.room = False
    writer.start()
    assert len(spawned) == 1 and sock.queue.qsize() == 1, "still queued: the writer sends it"
    ws.room = True
    sock.send(packet.Packet(packet.MESSAGE, "40"))  # the writer is due: this waits behind the open packet
    assert ws.offered == []
    run(spawned)
    assert ws.sent == ['0{"sid":"sid"}', "440"]
    sock.queue.put(None)
    assert len(spawned) == 1 and not ws.closed
    run(spawned)
    assert ws.closed
    sock.send(packet.Packet(packet.MESSAGE, "after the end"))
    assert ws.offered == [] and spawned == []


class ClosingWebSocket(OfferingWebSocket):
    """The fast path's WebSocket, which can also close past the queue when its socket has room now."""

    def offer_close(self) -> bool:
        if not self.room:
            return False
        self.closed = True
        return True


def test_the_end_marker_for_an_idle_client_closes_at_once_without_a_green_thread_and_releases_join() -> None:
    sock, ws, writer, spawned = setup(None, ClosingWebSocket)
    writer.start()
    run(spawned)
    sock.send(packet.Packet(packet.MESSAGE, "2[]"))
    sock.queue.put(None)  # python-engineio's close
    assert ws.closed and spawned == [] and sock.queue.qsize() == 0
    assert ws.offered == ["42[]"]
    writer.join()  # returns at once: the writer is over
    sock.send(packet.Packet(packet.MESSAGE, "after the end"))
    assert ws.offered == ["42[]"] and spawned == [] and ws.writes == []


def test_the_end_marker_behind_queued_packets_or_without_room_waits_for_the_writer_in_order() -> None:
    sock, ws, writer, spawned = setup(None, ClosingWebSocket)
    writer.start()
    run(spawned)
    ws.room = False
    sock.send(packet.Packet(packet.MESSAGE, "a"))
    ws.room = True  # room again, but "a" is still queued: the end must not pass it
    sock.queue.put(None)
    assert not ws.closed and len(spawned) == 1
    run(spawned)
    assert ws.closed and ws.writes == [["4a"]] and ws.offered == []

    sock, ws, writer, spawned = setup(None, ClosingWebSocket)
    writer.start()
    run(spawned)
    ws.room = False
    sock.queue.put(None)  # nothing queued, but no room in the socket: the writer closes it
    assert not ws.closed and len(spawned) == 1
    run(spawned)
    assert ws.closed


def test_an_end_marker_queued_before_start_is_not_offered_the_writer_sends_the_rest_then_closes() -> None:
    sock, ws, writer, spawned = offering()
    sock.send(packet.Packet(packet.OPEN, {"sid": "sid"}))
    sock.queue.put(None)  # closed before the upgrade was answered
    writer.start()
    assert ws.offered == [] and len(spawned) == 1
    run(spawned)
    assert ws.sent == ['0{"sid":"sid"}'] and ws.closed
