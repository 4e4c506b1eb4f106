"""LoopServer: what both fake exchanges share: one aiohttp server on a 127.0.0.1 port, in its own event loop on
a daemon thread, started and stopped from the tests' threads, with synchronous calls into the loop.

A fake subclasses it with ``NAME``, ``_dispatch`` (every HTTP and WebSocket request), ``_background`` (its loop
tasks: ticks, deliveries) and ``_close_all`` (closing every connection on stop).
"""
from __future__ import annotations

import asyncio
import logging
import signal
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Self, TypeVar

from aiohttp import web

from tests.fakes.connection import CLOSE_HANDSHAKE_TIMEOUT

__all__ = ["CALL_TIMEOUT", "CLOSE_GOING_AWAY", "HOST", "LoopServer", "serve"]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
CALL_TIMEOUT = 10.0  # seconds a synchronous API call (start, stop, drop_all, ...) may take
CLOSE_GOING_AWAY = 1001

_T = TypeVar("_T")


class LoopServer(ABC):
    NAME = "exchange"  # "Binance", "Bybit": in errors and logs
    CLOSE_REASON = "going away"  # what the connections are closed with on stop

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._port: int | None = None

    # -- what a fake provides ---------------------------------------------------------------------------------
    @abstractmethod
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        """Answer one HTTP or WebSocket request."""

    def _background(self) -> list[Coroutine[Any, Any, None]]:
        """The loop's tasks, started once the port listens (the loop's own events are made by now)."""
        return []

    @abstractmethod
    async def _close_all(self, code: int, reason: str) -> int:
        """Close every open connection with ``code`` and ``reason``; returns how many."""

    @abstractmethod
    def _on_loop(self) -> None:
        """Called first on the loop: make the asyncio objects that belong to it."""

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> Self:
        """Start serving; returns self once the port is listening."""
        name = type(self).__name__
        if self._thread is not None:
            raise RuntimeError(f"{name}.start() called twice; build a new {name} instead")
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name=f"fake-{self.NAME.lower()}",
                                        daemon=True)
        self._thread.start()
        if not ready.wait(CALL_TIMEOUT):
            raise RuntimeError(f"fake {self.NAME} did not start listening within {CALL_TIMEOUT} s")
        if self._startup_error is not None:
            self._thread.join(CALL_TIMEOUT)
            raise RuntimeError(f"fake {self.NAME} failed to start on {HOST}:{self._requested_port}: "
                               f"{self._startup_error}") from self._startup_error
        log.info("fake %s listening on %s", self.NAME.lower(), self.rest_url)
        return self

    def stop(self) -> None:
        """Close every connection (1001 "going away"), stop the loop and join its thread. Idempotent."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None or not thread.is_alive() or loop is None or stop_event is None:
            return
        if threading.current_thread() is thread:
            raise RuntimeError(f"{type(self).__name__}.stop() must not be called from the fake's own event loop")
        try:
            loop.call_soon_threadsafe(stop_event.set)
        except RuntimeError:  # the loop already closed on its own
            pass
        thread.join(CALL_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"fake {self.NAME} thread did not stop within {CALL_TIMEOUT} s")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not listening; call start() first")
        return self._port

    @property
    def ws_url(self) -> str:
        """ws://127.0.0.1:PORT, without a path: clients append the exchange's route as they do to its host."""
        return f"ws://{HOST}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # -- the event-loop thread --------------------------------------------------------------------------------
    def _call(self, make: Callable[[], Awaitable[_T]]) -> _T:
        """Run a coroutine on the fake's loop from a test's thread, and return its result."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive() or self._stopping:
            raise RuntimeError(f"{type(self).__name__} is not running; call start() first")
        if threading.current_thread() is thread:
            raise RuntimeError(f"synchronous {type(self).__name__} calls must not run on the fake's own event loop")

        async def run() -> _T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(CALL_TIMEOUT)

    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._main(ready))
        except BaseException as exc:  # reported to start(); the thread must not die silently
            if not ready.is_set():
                self._startup_error = exc
                ready.set()
            else:
                log.exception("fake %s event loop crashed", self.NAME.lower())

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._on_loop()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_HANDSHAKE_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, HOST, self._requested_port)
            await site.start()
            self._port = int(runner.addresses[0][1])
            tasks = [asyncio.create_task(coroutine) for coroutine in self._background()]
            ready.set()
            await self._stop_event.wait()
            self._stopping = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._close_all(CLOSE_GOING_AWAY, self.CLOSE_REASON)
        finally:
            await runner.cleanup()


def serve(start: Callable[[], LoopServer], verbose: bool) -> int:
    """A fake's command line: start it, print where it listens, and serve until SIGINT or SIGTERM."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    fake = start()
    try:
        print(f"fake {fake.NAME.lower()} listening ws={fake.ws_url} rest={fake.rest_url}", flush=True)
        while not stop_requested.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0
