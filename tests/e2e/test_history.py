"""History and recovery end to end: live events carry `offset` and `epoch`, `subscribed` carries `positions`, and a
client that comes back with `since` gets every update it missed exactly once and in order, then live ones; across
a service restart with Redis up too; with Redis down it is told `recovered: false` and gets the snapshot."""
from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from tests.e2e.clients import RecordingClient, unpositioned
from tests.e2e.test_streams import expected_trade
from tests.fakes.binance import FakeBinance
from tests.helpers import wait_for

SYMBOL = "ETHUSDT"
TRADES = f"trade:{SYMBOL}"


def positions_of(client: RecordingClient, ack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The last position of each channel the client saw: the subscribe answer's, then its events'."""
    positions = dict(ack["positions"])
    for event, key in (("trade", "trade"), ("price_update", "ticker"), ("book_ticker", "book")):
        for data in client.received(event):
            positions[f"{key}:{data['symbol']}"] = {"offset": data["offset"], "epoch": data["epoch"]}
    return positions


def test_live_events_carry_consecutive_offsets_within_one_epoch(clients, fake_binance: FakeBinance) -> None:
    fake_binance.set_tick_interval(0.1)
    client = clients()
    ack = client.call("subscribe", {"symbols": [SYMBOL], "streams": ["ticker", "trade", "book"]})
    assert set(ack["positions"]) == {f"ticker:{SYMBOL}", TRADES, f"book:{SYMBOL}"}
    assert ack["recovered"] == {}
    for position in ack["positions"].values():
        assert set(position) == {"offset", "epoch"} and isinstance(position["offset"], int)
        assert isinstance(position["epoch"], str) and position["epoch"]
    (subscribed,) = client.received("subscribed")
    assert subscribed == {k: v for k, v in ack.items()}, "the subscribed event is the acknowledgement"
    trades = client.wait("trade", count=20)
    start = ack["positions"][TRADES]
    offsets = [t["offset"] for t in trades]
    assert offsets == list(range(start["offset"] + 1, start["offset"] + 1 + len(trades))), "+1 per update"
    assert {t["epoch"] for t in trades} == {start["epoch"]}
    sent = {row["a"]: row for row in fake_binance.trades_sent(SYMBOL)}
    assert [unpositioned(t) for t in trades] == [expected_trade(sent[t["id"]]) for t in trades], "nothing else changes"
    assert all(set(t) == set(expected_trade(sent[t["id"]])) | {"offset", "epoch"} for t in trades)
    books = client.wait("book_ticker", count=5)
    book_offsets = [b["offset"] for b in books]
    assert book_offsets == sorted(set(book_offsets)) and all(b["epoch"] == ack["positions"][f"book:{SYMBOL}"]["epoch"]
                                                            for b in books)


def reconnect_after_gap(service_url: str, first: RecordingClient, ack: dict[str, Any], gap: float,
                        streams: list[str]) -> tuple[RecordingClient, dict[str, Any]]:
    since = positions_of(first, ack)
    first.close()
    time.sleep(gap)
    second = RecordingClient(service_url)
    return second, second.call("subscribe", {"symbols": [SYMBOL], "streams": streams, "since": since})


def assert_every_trade_once(fake: FakeBinance, first: RecordingClient, second: RecordingClient, count: int) -> None:
    """First session's trades, then the recovered ones, then live ones: each aggregated trade once, in order,
    equal to what the exchange sent, offsets without a gap."""
    before = first.received("trade")
    after = second.wait("trade", lambda t: not t.get("recovered"), count=10)
    recovered = second.received("trade", lambda t: t.get("recovered") is True)
    assert len(recovered) >= count, f"only {len(recovered)} trades recovered"
    everything = second.received("trade")
    assert everything[:len(recovered)] == recovered, "the missed ones come first"
    assert everything[len(recovered):][:len(after)] == after
    ids = [t["id"] for t in before + everything]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "every trade once, in order, none lost at either seam"
    offsets = [t["offset"] for t in before + everything]
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
    sent = {row["a"]: row for row in fake.trades_sent(SYMBOL)}
    assert [unpositioned(t) for t in before + everything] == [expected_trade(sent[i]) for i in ids]


def test_a_client_back_after_5_seconds_gets_every_missed_trade_once_then_live(start_service, fake_binance) -> None:
    service = start_service(RECOVERY_GRACE="30")  # the default: streams wait for a disconnected client
    fake_binance.set_tick_interval(0.1)  # 10 trades a second
    first = RecordingClient(service.url)
    ack = first.call("subscribe", {"symbols": [SYMBOL], "streams": ["trade", "ticker"]})
    first.wait("trade", count=5)
    second, answer = reconnect_after_gap(service.url, first, ack, 5.0, ["trade", "ticker"])
    try:
        assert answer["recovered"] == {TRADES: True, f"ticker:{SYMBOL}": True}
        assert_every_trade_once(fake_binance, first, second, count=40)
        tickers = second.received("price_update")
        assert tickers and all(t.get("recovered") for t in tickers[:1]), "missed tickers replace the snapshot"
        assert answer["positions"][TRADES]["offset"] == second.received("trade", lambda t: t.get("recovered"))[-1][
            "offset"], "the position answered is the last recovered update's"
    finally:
        second.close()


def test_recovery_works_across_a_service_restart_with_redis_up(start_service, fake_binance) -> None:
    fake_binance.set_tick_interval(0.1)
    service = start_service()
    first = RecordingClient(service.url)
    ack = first.call("subscribe", {"symbols": [SYMBOL], "streams": ["trade"]})
    first.wait("trade", count=10)
    time.sleep(0.5)  # the history writer's batches reach Redis
    first.close()  # first: a trade arriving between taking the positions and closing would come twice
    since = positions_of(first, ack)
    before = first.received("trade")
    service.stop()
    service.start()
    second = RecordingClient(service.url)
    try:
        answer = second.call("subscribe", {"symbols": [SYMBOL], "streams": ["trade"], "since": since})
        assert answer["recovered"] == {TRADES: True}, service.log()[-3000:]
        assert answer["positions"][TRADES]["epoch"] == since[TRADES]["epoch"], "the epoch holds across the restart"
        second.wait("trade", lambda t: not t.get("recovered"), count=5)
        after = second.received("trade")
        offsets = [t["offset"] for t in before + after]
        assert offsets == list(range(offsets[0], offsets[-1] + 1)), "offsets go on across the restart"
        ids = [t["id"] for t in before + after]
        assert ids == list(range(ids[0], ids[-1] + 1)), "the trades of the restart itself were fetched from REST"
        backfilled = service.metric("websocket_streaming_backfilled_trades_total")
        sent = {row["a"]: row for row in fake_binance.trades_sent(SYMBOL)}
        streamed = [trade for trade in after if trade["id"] in sent]  # the others happened while nobody streamed
        assert 0 < len(after) - len(streamed) <= backfilled
        for trade in streamed:  # those fetched from REST carry the trade time as their event time
            row = sent[trade["id"]]
            assert unpositioned(trade) in (expected_trade(row), {**expected_trade(row), "eventTime": row["T"]})
    finally:
        second.close()


def test_trades_missed_while_the_upstream_reconnected_are_fetched_in_order(clients, fake_binance, service) -> None:
    fake_binance.set_tick_interval(0.1)
    client = clients()
    client.call("subscribe", {"symbols": [SYMBOL], "streams": ["trade"]})
    client.wait("trade", count=10)
    assert fake_binance.drop_all() >= 1  # the service reconnects after RECONNECT_DELAY: trades go on meanwhile
    count = len(client.received("trade"))
    trades = client.wait("trade", count=count + 20, timeout=20)
    ids = [t["id"] for t in trades]
    assert ids == list(range(ids[0], ids[-1] + 1)), "every aggregated trade once, in order, none lost"
    offsets = [t["offset"] for t in trades]
    assert offsets == list(range(offsets[0], offsets[-1] + 1)) and len({t["epoch"] for t in trades}) == 1
    assert service.metric("websocket_streaming_backfilled_trades_total") > 0


def test_a_client_asking_for_too_much_or_a_lost_epoch_gets_false_and_the_snapshot(start_service, fake_binance) -> None:
    service = start_service(RECOVERY_MAX_UPDATES="5")
    fake_binance.set_tick_interval(0.1)
    first = RecordingClient(service.url)
    ack = first.call("subscribe", {"symbols": [SYMBOL], "streams": ["book", "trade"]})
    first.wait("trade", count=3)
    since = positions_of(first, ack)
    first.close()
    time.sleep(1.5)  # more than 5 trades
    second = RecordingClient(service.url)
    try:
        since[f"book:{SYMBOL}"] = {"offset": 3, "epoch": "00000000"}
        answer = second.call("subscribe", {"symbols": [SYMBOL], "streams": ["book", "trade"], "since": since})
        assert answer["recovered"] == {TRADES: False, f"book:{SYMBOL}": False}
        (book,) = second.wait("book_ticker")
        assert "recovered" not in book and book["offset"] == answer["positions"][f"book:{SYMBOL}"]["offset"]
        trades = second.wait("trade", count=2)
        assert not any(t.get("recovered") for t in trades), "no trades recovered, live ones only"
    finally:
        second.close()


def test_with_redis_down_the_epoch_changes_and_recovered_false_comes_with_a_snapshot(
        start_service, fake_binance, tmp_path) -> None:
    from tests.redis_server import RedisProcess

    private = RedisProcess(tmp_path).start()
    try:
        service = start_service(REDIS_PORT=str(private.port), REDIS_DB="0")
        fake_binance.set_tick_interval(0.1)
        first = RecordingClient(service.url)
        ack = first.call("subscribe", {"symbols": [SYMBOL], "streams": ["ticker"]})
        first.wait("price_update", count=2)
        wait_for(lambda: redis.Redis(port=private.port).exists(f"history:ticker:{SYMBOL}"))
        since = positions_of(first, ack)
        first.close()
        private.stop()
        wait_for(lambda: service.get("/health").json()["dependencies"]["history"]["store"] == "memory", timeout=6)
        second = RecordingClient(service.url)
        answer = second.call("subscribe", {"symbols": [SYMBOL], "streams": ["ticker"], "since": since})
        assert answer["recovered"] == {f"ticker:{SYMBOL}": False}
        new = answer["positions"][f"ticker:{SYMBOL}"]
        assert new["epoch"] != since[f"ticker:{SYMBOL}"]["epoch"], "the epoch changes on the switch to memory"
        updates = second.wait("price_update", count=3)
        assert "recovered" not in updates[0], "the snapshot, then live updates"
        assert {u["epoch"] for u in updates} == {new["epoch"]}
        second.close()
    finally:
        private.stop()


def test_history_pages_are_complete_ordered_and_match_what_was_streamed(clients, fake_binance, service) -> None:
    fake_binance.set_tick_interval(0.05)
    client = clients()
    client.call("subscribe", {"symbols": [SYMBOL], "streams": ["trade"]})
    live = client.wait("trade", count=60, timeout=20)
    pages, after = [], 0
    to = live[-1]["eventTime"]
    while True:
        body = service.get(f"/history/{SYMBOL}", params={"stream": "trade", "limit": 25, "after": after,
                                                         "to": to}).json()
        assert body["success"] and body["data"]["symbol"] == SYMBOL and body["data"]["stream"] == "trade"
        assert body["data"]["epoch"] == live[0]["epoch"]
        pages.append(body["data"]["items"])
        if body["data"]["next"] is None:
            break
        after = body["data"]["next"]
    items = [item for page in pages for item in page]
    assert all(len(page) == 25 for page in pages[:-1])
    offsets = [item["offset"] for item in items]
    assert offsets == list(range(1, len(items) + 1)), "every recorded update once, in order, from the first"
    by_offset = {item["offset"]: item for item in items}
    assert [{**t, "epoch": None} for t in live] == [{**by_offset[t["offset"]], "epoch": None} for t in live], \
        "history items are the live events (with their offset)"
    assert items[-1]["eventTime"] <= to
    iso_from = datetime.fromtimestamp(items[10]["eventTime"] / 1000, UTC).isoformat()
    ranged = service.get(f"/history/{SYMBOL}", params={"stream": "trade", "from": iso_from, "to": to,
                                                        "limit": 1000}).json()["data"]["items"]
    assert ranged[0]["eventTime"] >= items[10]["eventTime"] and ranged[0]["offset"] <= items[10]["offset"]
    assert [i["offset"] for i in ranged] == list(range(ranged[0]["offset"], ranged[-1]["offset"] + 1))


@pytest.mark.parametrize("params, message", [
    ({"stream": "candles"}, "'stream' must be one of"),
    ({"from": "yesterday"}, "'from' must be epoch milliseconds"),
    ({"from": "2000", "to": "1000"}, "is after 'to'"),
    ({"limit": "0"}, "'limit' must be a whole number from 1 to 1000"),
    ({"limit": "1001"}, "'limit'"),
    ({"after": "-1"}, "'after'"),
    ({"epoch": "not an epoch!"}, "'epoch'"),
])
def test_history_refuses_bad_ranges_plainly(service, params: dict[str, str], message: str) -> None:
    answer = service.get(f"/history/{SYMBOL}", params=params)
    assert answer.status_code == 400 and message in answer.json()["error"], answer.text
    assert answer.json()["code"] == "INVALID_REQUEST"
    # an unknown symbol is known to be unknown once the symbol list has loaded (until then any is accepted)
    wait_for(lambda: service.get("/symbols").json()["data"]["symbols_loaded"], timeout=10)
    assert service.get("/history/NOPEUSDT").status_code == 404
    assert service.get("/history/bad$").status_code == 400


def test_history_says_when_the_epoch_paged_through_is_gone(service) -> None:
    epoch = service.get(f"/history/{SYMBOL}").json()["data"]["epoch"]
    assert service.get(f"/history/{SYMBOL}", params={"epoch": epoch}).status_code == 200
    gone = service.get(f"/history/{SYMBOL}", params={"epoch": "0ld3p0ch"})
    assert gone.status_code == 409 and gone.json()["code"] == "EPOCH_CHANGED" and gone.json()["epoch"] == epoch


def replayed(client: RecordingClient, replay_id: str, timeout: float = 20.0) -> tuple[list[dict], dict]:
    (end,) = client.wait("replay_end", lambda e: e["replay_id"] == replay_id, timeout=timeout)
    return [d for d in client.received("replay_data") if d["replay_id"] == replay_id], end


def test_replay_paces_by_speed_and_streams_exactly_the_range(clients, fake_binance, service) -> None:
    fake_binance.set_tick_interval(0.1)
    client = clients()
    client.call("subscribe", {"symbols": [SYMBOL], "streams": ["trade"]})
    trades = client.wait("trade", count=31, timeout=20)
    start, end = trades[0]["eventTime"], trades[30]["eventTime"]
    span = (end - start) / 1000
    began = time.monotonic()
    ack = client.call("replay", {"symbol": SYMBOL, "stream": "trade", "from": start, "to": end, "speed": 10})
    assert set(ack) >= {"replay_id", "symbol", "stream", "from", "to", "speed"} and ack["speed"] == 10
    data, end_event = replayed(client, ack["replay_id"])
    took = time.monotonic() - began
    assert end_event == {"replay_id": ack["replay_id"], "count": len(data)}
    assert [d["event"] for d in data] == ["trade"] * len(data)
    in_range = [t for t in trades if start <= t["eventTime"] <= end]
    assert [d["data"] for d in data] == in_range, "the recorded updates, in order, with offset and epoch"
    assert span / 10 * 0.7 <= took <= span / 10 + 1.5, f"{took:.2f}s for a {span:.1f}s span at speed 10"


def test_replay_at_speed_0_waits_for_a_slow_reader_and_can_be_stopped(clients, fake_binance, service) -> None:
    fake_binance.set_tick_interval(0.02)
    client = clients()
    client.call("subscribe", {"symbols": [SYMBOL], "streams": ["trade", "book"]})
    client.wait("trade", count=200, timeout=30)
    ack = client.call("replay", {"symbol": SYMBOL, "stream": "book", "speed": 0})
    data, end = replayed(client, ack["replay_id"])
    assert end["count"] == len(data) >= 200
    offsets = [d["data"]["offset"] for d in data]
    assert offsets == list(range(1, len(offsets) + 1))
    many = [client.call("replay", {"symbol": SYMBOL, "stream": "trade", "speed": 0.01}) for _ in range(3)]
    refused = client.call("replay", {"symbol": SYMBOL, "stream": "trade"})
    assert refused["code"] == "TOO_MANY_REPLAYS"
    for started in many:
        assert client.call("replay_stop", {"replay_id": started["replay_id"]}) == {
            "replay_id": started["replay_id"], "stopped": True}
        _, stopped = replayed(client, started["replay_id"], timeout=5)
        assert stopped["stopped"] is True
    assert client.call("replay_stop", {"replay_id": "nope"})["code"] == "UNKNOWN_REPLAY"
    for bad, message in (({"symbol": SYMBOL, "speed": -1}, "'speed'"), ({"symbol": SYMBOL, "from": "x"}, "'from'"),
                         ({"symbol": "NOPEUSDT"}, "NOPEUSDT"), ("BTCUSDT", "expected an object")):
        answer = client.call("replay", bad)
        assert message in answer["message"], answer
