"""RestClient: what every exchange's REST client shares: one HTTP session, the request gate (pauses the
exchange asked for), the outcome counters, and the errors the look-ups expect. Each exchange's subclass says
what its answers mean (``_interpret``)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

import requests

from metrics.collectors import ServiceMetrics
from metrics.labels import RestEndpoint, RestOutcome
from streaming.core.errors import ProtocolError, RateLimitedError, UpstreamUnavailableError
from streaming.core.pacing import RequestGate

__all__ = ["RestClient"]

T = TypeVar("T")


class RestClient(ABC):
    def __init__(self, title: str, base_url: str, timeout: float, metrics: ServiceMetrics, gate: RequestGate) -> None:
        self.title = title  # "Binance REST API", in errors and /health
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._metrics = metrics
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "websocket-streaming"
        self.gate = gate
        self.last_ok: bool | None = None  # did the exchange answer the last call (None: no call yet)?

    def _get(self, endpoint: RestEndpoint, params: dict[str, str] | None = None) -> Any:
        """GET an endpoint through the gate; the answer's body as the subclass reads it."""
        wait = self.gate.blocked_for()
        if wait > 0:
            self._count(endpoint, RestOutcome.HELD_BACK)
            raise RateLimitedError(f"{self.title} calls paused for {wait:.0f}s more ({self.gate.reason})",
                                   retry_after=wait)
        try:
            response = self._session.get(self._base_url + endpoint.path, params=params, timeout=self._timeout)
        except requests.RequestException as exc:
            self._count(endpoint, RestOutcome.UNREACHABLE)
            self.last_ok = False
            raise UpstreamUnavailableError(f"{self.title} unreachable ({type(exc).__name__})") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        return self._interpret(endpoint, response, body)

    @abstractmethod
    def _interpret(self, endpoint: RestEndpoint, response: requests.Response, body: Any) -> Any:
        """The useful part of an answer, counting its outcome; raises the look-ups' errors for the others."""

    def _count(self, endpoint: RestEndpoint, outcome: RestOutcome) -> None:
        self._metrics.rest_requests.labels(endpoint, outcome).inc()

    def _parsed(self, endpoint: RestEndpoint, params: dict[str, str], parse: Callable[[Any], T], what: str) -> T:
        """GET and parse; a malformed answer is UpstreamUnavailableError."""
        body = self._get(endpoint, params)
        try:
            return parse(body)
        except ProtocolError as exc:
            raise UpstreamUnavailableError(f"{self.title}: the {what} answer is malformed: {exc}") from exc

    def available(self) -> bool:
        """Whether a call may work now: not paused by the gate, and the last call (if any) was answered."""
        return self.last_ok is not False and self.gate.blocked_for() <= 0

    def close(self) -> None:
        self._session.close()
