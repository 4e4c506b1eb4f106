"""Background tasks: the TaskRunner interface, its Flask-SocketIO implementation (and one on plain threads for
command-line tools), and PeriodicTask.

Every background loop of the service is a PeriodicTask: it runs one step at a time until stopped, is woken
early on demand, and survives a failing step (logged with its traceback and counted) instead of dying silently.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["TaskRunner", "SocketIOTasks", "ThreadTasks", "PeriodicTask"]

log = logging.getLogger(__name__)


class TaskRunner(Protocol):
    """Background-task primitives of the async mode in use (Flask-SocketIO's, in production)."""

    def start(self, target: Callable[..., object], *args: object) -> object: ...

    def sleep(self, seconds: float) -> None: ...


class SocketIOTasks:
    """TaskRunner backed by Flask-SocketIO's helpers (eventlet, gevent or threads alike); counts running tasks."""

    def __init__(self, socketio: SocketIOLike) -> None:
        self._socketio = socketio
        self._lock = threading.Lock()
        self.running = 0

    def start(self, target: Callable[..., object], *args: object) -> object:
        def run() -> None:
            try:
                target(*args)
            finally:
                with self._lock:
                    self.running -= 1

        with self._lock:
            self.running += 1
        return self._socketio.start_background_task(run)

    def sleep(self, seconds: float) -> None:
        self._socketio.sleep(seconds)


class ThreadTasks:
    """TaskRunner on plain daemon threads, for command-line tools that run without a SocketIO server."""

    def start(self, target: Callable[..., object], *args: object) -> object:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        return thread

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class SocketIOLike(Protocol):
    def start_background_task(self, target: Callable[..., object], *args: object) -> object: ...

    def sleep(self, seconds: float) -> None: ...


class PeriodicTask:
    """Calls ``step`` in a background task until stopped; ``step`` returns the seconds to wait before the next
    call (None: ``interval``). ``on_error`` is told the task's name when a step raised."""

    def __init__(
        self,
        name: str,
        tasks: TaskRunner,
        step: Callable[[], float | None],
        interval: float,
        on_error: Callable[[str], None] = lambda name: None,
    ) -> None:
        self.name = name
        self._tasks = tasks
        self._step = step
        self._interval = interval
        self._on_error = on_error
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._done = threading.Event()
        self._done.set()

    def start(self) -> None:
        self._stop.clear()
        self._done.clear()
        self._tasks.start(self._run)

    def wake(self) -> None:
        """Run the next step now rather than after the wait."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop after the current step; returns whether the task ended within ``timeout``."""
        self._stop.set()
        self._wake.set()
        return self._done.wait(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                wait = None
                self._wake.clear()  # before the step: a wake during the step runs the next one at once
                try:
                    wait = self._step()
                except Exception:  # one failed step must not end the loop
                    log.exception("%s: step failed; continuing", self.name)
                    self._on_error(self.name)
                self._wake.wait(self._interval if wait is None else max(0.0, wait))
        finally:
            self._done.set()
