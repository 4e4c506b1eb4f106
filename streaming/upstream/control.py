"""ControlChannel: the live-subscription bookkeeping of one upstream connection, without I/O.

It knows which streams the connection should carry, which the exchange has acknowledged, which requests are in
flight (matched by integer id), and plans the next SUBSCRIBE / UNSUBSCRIBE under a token bucket. A refused
request that does not say which of its streams were refused is asked again one stream at a time, so that one
bad stream never takes the others with it. Pure; the exchange's adapter turns requests into frames.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from streaming.core.pacing import TokenBucket

__all__ = ["ControlChannel", "PendingRequest", "Outcome"]


@dataclass(frozen=True, slots=True)
class PendingRequest:
    id: int
    method: str
    streams: tuple[str, ...]
    sent_at: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a reply did: the request it answered (None for an unknown id) and whether it succeeded."""

    request: PendingRequest | None
    ok: bool
    message: str = ""


class ControlChannel:
    """Per-connection subscription state. Not thread-safe: the owner serialises calls."""

    def __init__(
        self,
        clock: Callable[[], float],
        messages_per_second: float,
        max_batch: int = 50,
        first_id: int = 1,
    ) -> None:
        self._clock = clock
        self._rate = messages_per_second
        self._bucket = TokenBucket(messages_per_second, 1, clock)
        self._max_batch = max_batch
        self._next_id = first_id
        self.wanted: set[str] = set()
        self.active: set[str] = set()
        self.rejected: set[str] = set()
        self._singly: set[str] = set()  # streams of a refused batch: each asked again on its own
        self._pending: dict[int, PendingRequest] = {}

    # -- connection lifecycle ---------------------------------------------------------------------------------
    def connected(self, streams_in_url: Iterable[str]) -> None:
        """A (re)connection opened with these streams in its URL: they are active; nothing is in flight."""
        self.active = set(streams_in_url)
        self._pending.clear()
        self._bucket = TokenBucket(self._rate, 1, self._clock)

    def disconnected(self) -> None:
        self.active.clear()
        self._pending.clear()

    # -- what the connection should carry --------------------------------------------------------------------
    def want(self, stream: str) -> None:
        self.wanted.add(stream)

    def unwant(self, stream: str) -> None:
        """Stop wanting a stream; a later ``want`` retries it even if the exchange refused it before."""
        self.wanted.discard(stream)
        self.rejected.discard(stream)
        self._singly.discard(stream)

    # -- planning ---------------------------------------------------------------------------------------------
    def _in_flight(self, method: str) -> set[str]:
        streams: set[str] = set()
        for request in self._pending.values():
            if request.method == method:
                streams.update(request.streams)
        return streams

    def backlog(self) -> tuple[list[str], list[str]]:
        """``(to_subscribe, to_unsubscribe)`` not yet requested, sorted."""
        wanted = self.wanted - self.rejected
        to_subscribe = sorted(wanted - self.active - self._in_flight("SUBSCRIBE"))
        to_unsubscribe = sorted((self.active - self.wanted) - self._in_flight("UNSUBSCRIBE"))
        return to_subscribe, to_unsubscribe

    def next_request(self) -> PendingRequest | None:
        """The next request to send now, if any is due and the pace allows; it is recorded as in flight."""
        to_subscribe, to_unsubscribe = self.backlog()
        alone = [stream for stream in to_subscribe if stream in self._singly]
        if alone:
            method, streams = "SUBSCRIBE", alone[:1]
        elif to_subscribe:
            method, streams = "SUBSCRIBE", to_subscribe
        elif to_unsubscribe:
            method, streams = "UNSUBSCRIBE", to_unsubscribe
        else:
            return None
        if not self._bucket.try_take():
            return None
        request = PendingRequest(self._next_id, method, tuple(streams[: self._max_batch]), self._clock())
        self._next_id += 1
        self._pending[request.id] = request
        return request

    def take_token(self) -> bool:
        """Take a pacing token for a message that is not a request (a ping); returns whether one was free."""
        return self._bucket.try_take()

    def fully_active(self) -> bool:
        """Whether every wanted stream (not refused) is active."""
        return (self.wanted - self.rejected) <= self.active

    def sync_wanted(self, wanted: set[str]) -> None:
        """Want exactly these streams (used to keep a rotation successor in step with its predecessor)."""
        for stream in wanted - self.wanted:
            self.want(stream)
        for stream in self.wanted - wanted:
            self.unwant(stream)

    def pace_delay(self) -> float:
        """Seconds until another request may be sent."""
        return self._bucket.wait_time()

    # -- replies ----------------------------------------------------------------------------------------------
    def on_reply(self, request_id: int | None) -> Outcome:
        request = self._pending.pop(request_id, None) if request_id is not None else None
        if request is None:
            return Outcome(None, True)
        if request.method == "SUBSCRIBE":
            self.active.update(request.streams)
            self._singly.difference_update(request.streams)
        elif request.method == "UNSUBSCRIBE":
            self.active.difference_update(request.streams)
        return Outcome(request, True)

    def on_error(self, request_id: int | None, message: str, refused: tuple[str, ...] | None = None,
                 subscribed: tuple[str, ...] = ()) -> Outcome:
        """A refused request. ``refused``: the streams the exchange named as refused, and ``subscribed`` those
        it named as subscribed already; the rest of the request is asked again. ``refused`` None: the exchange
        did not say which. Refused SUBSCRIBE streams are marked rejected, so they are not asked again in a loop;
        a refused batch that names none is asked again one stream at a time."""
        request = self._pending.pop(request_id, None) if request_id is not None else None
        if request is not None and request.method == "SUBSCRIBE":
            if refused is not None or subscribed:
                self.rejected.update(set(refused or ()) & set(request.streams))
                self.active.update(set(subscribed) & set(request.streams))
            elif len(request.streams) == 1:
                self.rejected.update(request.streams)
            else:
                self._singly.update(request.streams)
        return Outcome(request, False, message)

    def overdue(self, timeout: float) -> list[PendingRequest]:
        """Requests unanswered for longer than ``timeout`` seconds."""
        limit = self._clock() - timeout
        return [request for request in self._pending.values() if request.sent_at < limit]

    def pending_count(self) -> int:
        return len(self._pending)
