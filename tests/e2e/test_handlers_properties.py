"""Property tests (Hypothesis) of the Socket.IO handlers through Flask-SocketIO's in-process test client.

Whatever a client sends (any payload on subscribe/unsubscribe, any event name), the handlers answer with the
documented events only, never fail, and the client stays connected and counted exactly once. Each example runs
on a fresh app (no background tasks started) whose symbol catalog was loaded once from a local fake Binance.
"""
from __future__ import annotations

import string
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app import create_app
from config import Settings
from streaming.core.symbols import SYMBOL_PATTERN
from streaming.gateway.events import WELCOME
from streaming.service import StreamingService
from tests.fakes.binance import FakeBinance
from tests.helpers import wait_for

PROPERTIES = settings(max_examples=100, deadline=None, database=None,  # failures print their example
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ERROR_CODES = {"INVALID_REQUEST", "INVALID_SYMBOL", "UNKNOWN_SYMBOL", "TOO_MANY_SYMBOLS", "RATE_LIMITED",
               "UNKNOWN_EVENT"}  # the documented ones; INTERNAL_ERROR would mean a handler failed
PUSHES = {"price_update", "stream_status"}  # sent on their own to subscribers, not answers
KNOWN = ["BTCUSDT", "ETHUSDT", "LINKUSDT", "DOGEUSDT", "XRPUSDT", "SOLUSDT"]
CLIENT_ADDRESS = ""  # what the test client's requests report as remote_addr
RESERVED = ["connect", "disconnect", "connect_error"]

# -- strategies -----------------------------------------------------------------------------------------------

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
# JSON-encodable values (the test client sends JSON, bytes as binary attachments), NaN and infinities included.
# Ints stay under 100 digits: Engine.IO's decoder refuses longer ones before any handler runs (and the service
# then closes the connection as for any malformed packet; tests/e2e/test_bad_input.py covers that).
scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**98), max_value=10**98),
                   st.floats(allow_nan=True, allow_infinity=True), any_text, st.binary(max_size=20))
json_like = st.recursive(
    scalar,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=20,
)
symbol_like = st.one_of(
    st.sampled_from(KNOWN).flatmap(lambda s: st.sampled_from([s, s.lower(), f" {s}\t", s.capitalize()])),
    st.from_regex(SYMBOL_PATTERN, fullmatch=True),
    st.text(string.ascii_letters + string.digits + "_-/ .", max_size=35),
    any_text,
)
symbols_payload = st.one_of(
    st.fixed_dictionaries({"symbols": st.lists(st.one_of(symbol_like, json_like), max_size=25)}),
    st.fixed_dictionaries({"symbols": st.lists(symbol_like, min_size=1, max_size=8)},
                          optional={"extra": json_like}),
    json_like,
)
extra_args = st.lists(json_like, max_size=2)
event_name = st.one_of(
    st.sampled_from(["subscribe", "unsubscribe", "message", "json", "error", "subscribed", "price_update", "*",
                     "", *RESERVED]),
    any_text,
    st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),  # hashable non-strings
)

# -- app per example ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[FakeBinance, frozenset[str]]]:
    """A fake Binance for REST, and its tradable symbols as the service loads them (once, from exchangeInfo)."""
    with FakeBinance(tick_interval=0.2) as fake:
        service: StreamingService = _app(fake).extensions["streaming"]
        assert service.refresh_catalog(), "the catalog loads from the fake's exchangeInfo"
        catalog = frozenset(service.catalog.symbols())
        service.rest.close()
        assert set(KNOWN) <= catalog
        yield fake, catalog


def _app(fake: FakeBinance) -> Flask:
    return create_app(Settings(
        async_mode="threading", redis_enabled=False, binance_ws_url=fake.ws_url, binance_rest_url=fake.rest_url,
        # limits high enough that every event reaches its handler; max_connections_per_ip=1 makes a miscount
        # visible through the public connection_refusal()
        client_events_per_second=100_000, client_event_burst=100_000, max_connections_per_ip=1,
        max_symbols_per_request=20, max_symbols_per_client=10,
    ))


@contextmanager
def connected_client(world: tuple[FakeBinance, frozenset[str]]) -> Iterator[tuple[Any, StreamingService]]:
    """A fresh app with the loaded catalog and one connected test client; checks the bookkeeping afterwards."""
    fake, catalog = world
    app = _app(fake)
    service: StreamingService = app.extensions["streaming"]
    service.catalog.replace(catalog, time.time())
    client = app.extensions["socketio"].test_client(app)
    try:
        assert client.is_connected()
        greeting = client.get_received()
        assert [(m["name"], m["args"][0]["message"]) for m in greeting] == [("connected", WELCOME)]
        yield client, service
        assert client.is_connected(), "the client stays connected"
        assert service.snapshot()["connected_clients"] == 1, "the client is still counted, once"
        assert service.connection_refusal(CLIENT_ADDRESS) is not None, "its address holds its one connection"
        client.disconnect()
        assert service.snapshot()["connected_clients"] == 0
        assert service.snapshot()["total_subscriptions"] == 0
        assert service.connection_refusal(CLIENT_ADDRESS) is None, "a disconnected client holds no connection slot"
        assert _handler_errors(service) == 0, "no handler failed (INTERNAL_ERROR)"
    finally:
        # symbols first subscribed are warmed up from REST in the background: let those tasks finish
        wait_for(lambda: service.tasks.running == 0, timeout=10, message="warm-up tasks")
        service.rest.close()


def _handler_errors(service: StreamingService) -> float:
    value = service.metrics.registry.get_sample_value(
        "websocket_streaming_task_errors_total", {"task": "socketio_handler"})
    return value or 0.0


def _is_symbol_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(s, str) and SYMBOL_PATTERN.fullmatch(s) for s in value)


def _check_error(payload: Any) -> None:
    assert isinstance(payload, dict), payload
    assert isinstance(payload.get("code"), str) and payload["code"] in ERROR_CODES, payload
    assert isinstance(payload.get("message"), str) and payload["message"], payload
    if "event" in payload:
        assert isinstance(payload["event"], str) and len(payload["event"]) <= 40, payload
    if "symbols" in payload:
        assert isinstance(payload["symbols"], list) and all(isinstance(s, str) for s in payload["symbols"])


def _check_answer(kind: str, payload: Any, catalog: frozenset[str]) -> list[str]:
    """A ``subscribed``/``unsubscribed`` payload: valid symbols and a message. Returns the symbols."""
    assert isinstance(payload, dict) and isinstance(payload.get("message"), str), payload
    assert _is_symbol_list(payload.get("symbols")), payload
    if kind == "subscribed":
        assert set(payload["symbols"]) <= catalog, payload
    return payload["symbols"]


def _check_replies(received: list[dict[str, Any]], catalog: frozenset[str], held: set[str]) -> None:
    """Every event the client got is an answer, an error, or a push for a symbol it subscribed to."""
    for message in received:
        name, args = message["name"], message["args"]
        assert message["namespace"] == "/" and len(args) == 1, message
        if name in ("subscribed", "unsubscribed"):
            symbols = _check_answer(name, args[0], catalog)
            if name == "subscribed":
                held.update(symbols)
        elif name == "error":
            _check_error(args[0])
        elif name in PUSHES:
            assert isinstance(args[0], dict) and args[0].get("symbol") in held, message
        else:
            raise AssertionError(f"unexpected event {name!r} sent to the client: {args!r}")


def _check_ack(event: Any, ack: Any, catalog: frozenset[str]) -> None:
    """The acknowledgement: the answer (with ``errors`` when some items were refused) or the error payload."""
    assert isinstance(ack, dict), f"{event!r} acknowledged with {ack!r}"
    if "code" in ack:
        _check_error(ack)
        return
    assert event in ("subscribe", "unsubscribe"), f"{event!r} acknowledged with {ack!r}"
    _check_answer("subscribed" if event == "subscribe" else "unsubscribed", ack, catalog)
    for error in ack.get("errors", []):
        _check_error(error)


def _send(world: tuple[FakeBinance, frozenset[str]], steps: list[tuple[Any, list[Any]]]) -> None:
    catalog = world[1]
    with connected_client(world) as (client, service):
        held: set[str] = set()  # every symbol subscribed so far (a late push after unsubscribing is fine)
        for event, args in steps:
            ack = client.emit(event, *args, callback=True)
            assert client.is_connected(), f"disconnected after {event!r}"
            assert service.snapshot()["connected_clients"] == 1, f"event {event!r} changed the client count"
            _check_replies(client.get_received(), catalog, held)
            _check_ack(event, ack, catalog)


# -- properties -----------------------------------------------------------------------------------------------


@PROPERTIES
@given(payloads=st.lists(st.tuples(symbols_payload, extra_args), min_size=1, max_size=4))
def test_subscribe_answers_only_documented_events(world, payloads: list[tuple[Any, list[Any]]]) -> None:
    _send(world, [("subscribe", [payload, *extra]) for payload, extra in payloads])


@PROPERTIES
@given(steps=st.lists(st.tuples(st.sampled_from(["subscribe", "unsubscribe"]), symbols_payload, extra_args),
                      min_size=1, max_size=6))
def test_unsubscribe_answers_only_documented_events(world, steps: list[tuple[str, Any, list[Any]]]) -> None:
    _send(world, [(event, [payload, *extra]) for event, payload, extra in steps])


@PROPERTIES
@given(event=event_name, args=st.lists(json_like, max_size=3))
@example(event="connect", args=[{}])  # reached the connect handler: a second greeting and a leaked slot
@example(event="disconnect", args=[])  # reached the disconnect handler: the client uncounted, still connected
@example(event="*", args=[])  # Flask-SocketIO's catch-all wrapper took args[0] as the sid: IndexError
@example(event="*", args=["no-such-sid"])  # ... and acknowledged ['', 400] with no error event
def test_any_event_name_gets_a_documented_answer(world, event: Any, args: list[Any]) -> None:
    _send(world, [(event, args)])


def test_a_client_cannot_act_as_another(world) -> None:
    """An event named '*' whose first argument is another client's sid must not run as that client."""
    fake, catalog = world
    app = _app(fake)
    socketio = app.extensions["socketio"]
    victim = socketio.test_client(app)
    victim_sid = victim.get_received()[0]["args"][0]["client_id"]
    attacker = socketio.test_client(app)
    attacker.get_received()
    try:
        attacker.emit("*", victim_sid, {"symbols": ["BTCUSDT"]}, callback=True)
        assert victim.get_received() == [], "events the attacker caused were sent to the victim"
        assert attacker.is_connected() and victim.is_connected()
    finally:
        attacker.disconnect()
        victim.disconnect()
        app.extensions["streaming"].rest.close()
