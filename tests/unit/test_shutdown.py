"""GracefulShutdown: the order of the steps, the bound, and a second signal."""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from streaming.runtime.shutdown import GracefulShutdown
from tests.helpers import wait_for


class Steps:
    def __init__(self) -> None:
        self.done: list[str] = []


class FakeEioSocket:
    """``lingers``: still listed after its close (its handler has not unwound yet), as a WebSocket (``upgraded``)
    whose writer has taken everything, or as a long-polling session whose client has not polled again."""

    def __init__(self, sid: str, sockets: dict[str, FakeEioSocket], steps: Steps, lingers: bool = False,
                 upgraded: bool = True) -> None:
        self.sid, self._sockets, self._steps, self._lingers = sid, sockets, steps, lingers
        self.closed, self.upgraded = False, upgraded
        self.queue: queue.Queue[Any] = queue.Queue()

    def close(self, wait: bool = True, abort: bool = False) -> None:
        if not self.closed:
            self._steps.done.append(f"close {self.sid}")
        self.closed = True
        if not self._lingers:
            self._sockets.pop(self.sid, None)


class FakeSocketIO:
    """The parts of flask_socketio.SocketIO the shutdown uses, with real threads."""

    def __init__(self, steps: Steps, clients: int) -> None:
        sockets: dict[str, FakeEioSocket] = {}
        for i in range(clients):
            sockets[f"c{i}"] = FakeEioSocket(f"c{i}", sockets, steps)
        self.server = type("Server", (), {})()
        self.server.eio = type("Eio", (), {"sockets": sockets})()
        self.server.environ = {}

    def start_background_task(self, target: Callable[..., Any], *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        return thread

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class FakeServer:
    def __init__(self, steps: Steps) -> None:
        self.steps = steps

    def stop_accepting(self) -> None:
        self.steps.done.append("stop accepting")


class FakeService:
    def __init__(self, steps: Steps, stop_takes: float = 0.0) -> None:
        self.steps, self.stop_takes = steps, stop_takes
        self.stop_timeout: float | None = None

    def begin_shutdown(self) -> None:
        self.steps.done.append("refuse new clients")

    def tell_clients(self, reason: str) -> int:
        self.steps.done.append(f"tell clients ({reason})")
        return 2

    def stop(self, timeout: float) -> None:
        self.stop_timeout = timeout
        time.sleep(self.stop_takes)
        self.steps.done.append("stop service")


def build(clients: int = 2, timeout: float = 5.0,
          stop_takes: float = 0.0) -> tuple[GracefulShutdown, Steps, list[int], FakeService]:
    steps, exits = Steps(), []
    service = FakeService(steps, stop_takes)
    shutdown = GracefulShutdown(service, FakeSocketIO(steps, clients), FakeServer(steps), timeout,  # type: ignore[arg-type]
                                exit_now=exits.append)
    return shutdown, steps, exits, service


def test_steps_run_in_order_and_exit_status_is_zero() -> None:
    shutdown, steps, exits, service = build()
    shutdown.request("SIGTERM")
    assert shutdown.wait() == 0
    # the upstream is closed and the cache and history flushed first, while the loop is calm; the listener stays
    # open while clients are told and closed (/ready answers 503 and connects are refused with
    # SERVER_SHUTTING_DOWN meanwhile); only then does the kernel refuse new connections
    assert steps.done == ["refuse new clients", "stop service", "tell clients (SIGTERM)", "close c0", "close c1",
                          "stop accepting"]
    wait_for(lambda: exits, timeout=2, message="the shutdown did not end the process")
    assert exits == [0]
    assert service.stop_timeout is not None and 0.5 <= service.stop_timeout <= 5.0 - 2.0  # the clients' grace left


def test_a_hung_step_exits_with_status_1_at_the_bound() -> None:
    shutdown, steps, exits, _ = build(timeout=1.0, stop_takes=3.0)
    started = time.monotonic()
    shutdown.request("SIGTERM")
    deadline = time.monotonic() + 5
    while not exits and time.monotonic() < deadline:
        time.sleep(0.02)
    assert exits == [1]
    assert 0.9 <= time.monotonic() - started < 2.0


def test_a_second_signal_exits_at_once() -> None:
    shutdown, steps, exits, _ = build(stop_takes=1.0)
    shutdown.request("SIGTERM")
    shutdown.request("SIGINT")
    assert exits == [1]


def test_the_shutdown_itself_ends_the_process_at_once_with_status_zero() -> None:
    """After the steps, the shutdown's own task ends the process through os._exit: the interpreter's teardown of
    thousands of clients' objects, or the event loop getting back to the waiting main thread under a storm of
    closing clients, would hold the next process of a deploy back for seconds."""
    shutdown, steps, exits, _ = build()
    shutdown.request("SIGTERM")
    wait_for(lambda: exits, timeout=2, message="the shutdown did not end the process")
    assert exits == [0] and steps.done[-1] == "stop accepting"
    shutdown.end(1)  # what main() does if the exit did not end the process
    assert exits == [0, 1]


def test_a_websocket_counts_as_closed_once_its_writer_took_everything_a_polling_session_once_it_is_gone() -> None:
    shutdown, steps, _, _ = build(clients=0)
    sockets = shutdown._socketio.server.eio.sockets
    sockets["ws"] = FakeEioSocket("ws", sockets, steps, lingers=True)
    started = time.monotonic()
    shutdown.request("SIGTERM")
    shutdown.wait()
    assert time.monotonic() - started < 0.5, "the WebSocket's unwinding is not waited for"

    shutdown, steps, _, _ = build(clients=0)
    sockets = shutdown._socketio.server.eio.sockets
    sockets["poll"] = FakeEioSocket("poll", sockets, steps, lingers=True, upgraded=False)
    started = time.monotonic()
    shutdown.request("SIGTERM")
    shutdown.wait()
    assert time.monotonic() - started >= 1.9, "a polling client between two polls is given the grace"
