"""Recordings for tests: Binance payloads shaped as in ``tests/data`` (the 2026 wire order), combined-stream frames,
a small recording of BTCUSDT and ETHUSDT, and writing one to a file as the recorder does."""
from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streaming.exchanges.binance.streams import MARKET, PUBLIC
from streaming.exchanges.recording import Record, encode_record

__all__ = ["agg_trade", "book_ticker", "bybit_message", "bybit_sample_records", "frame", "sample_records", "ticker",
           "write_recording"]


def ticker(symbol: str, at: int, price: str = "86026.40", first: int = 100, last: int = 110) -> dict[str, Any]:
    return {"e": "24hrTicker", "E": at, "s": symbol, "ps": symbol, "p": "9.90", "P": "0.012", "w": "85685.71",
            "c": price, "Q": "0.050", "o": "86016.50", "h": "86683.90", "l": "84910.00", "v": "119489.809",
            "q": "10238568766.13", "O": at - 86_400_000, "C": at, "F": first, "L": last, "n": 11, "st": 1}


def agg_trade(symbol: str, at: int, agg_id: int, first: int, last: int, price: str = "86000.00",
              qty: str = "4.577") -> dict[str, Any]:
    return {"e": "aggTrade", "E": at, "a": agg_id, "s": symbol, "p": price, "q": qty, "nq": qty, "f": first,
            "l": last, "T": at - 2, "m": True, "st": 1}


def book_ticker(symbol: str, at: int, update_id: int) -> dict[str, Any]:
    return {"e": "bookTicker", "u": update_id, "s": symbol, "ps": symbol, "b": "86026.30", "B": "4.211",
            "a": "86026.40", "A": "1.070", "T": at - 4, "E": at, "st": 1}


def frame(stream: str, data: object) -> str:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


def sample_records(t0: int, steps: int = 5, spacing: int = 500) -> list[Record]:
    """``steps`` rounds, ``spacing`` ms apart, of a BTCUSDT ticker, trade and book ticker and an ETHUSDT trade,
    received 3 to 5 ms after their event time; a SUBSCRIBE reply first. Step ``s`` has BTCUSDT trade id
    ``7000 + s`` at price ``8600{s}.00`` (quantity 4.577) and ticker price ``8600{s}.10``."""
    records = [Record(t0 - 50, MARKET, '{"result":null,"id":1}')]
    for step in range(steps):
        at = t0 + spacing * step
        records += [
            Record(at + 3, MARKET, frame("btcusdt@ticker", ticker("BTCUSDT", at, f"8600{step}.10", 200,
                                                                  201 + 2 * step))),
            Record(at + 3, MARKET, frame("btcusdt@aggTrade", agg_trade("BTCUSDT", at, 7000 + step, 200 + 2 * step,
                                                                      201 + 2 * step, f"8600{step}.00"))),
            Record(at + 4, MARKET, frame("ethusdt@aggTrade", agg_trade("ETHUSDT", at, 50 + step, 90 + step,
                                                                      90 + step, "3000.00", "1.5"))),
            Record(at + 5, PUBLIC, frame("btcusdt@bookTicker", book_ticker("BTCUSDT", at, 9_000_000 + 7 * step))),
        ]
    return records


def write_recording(path: Path, records: Iterable[Record], compress: bool = True) -> Path:
    """A recording file as the recorder writes it (gzip JSON Lines), or plain JSON Lines."""
    text = "".join(encode_record(record) + "\n" for record in records).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text) if compress else text)
    return path


# -- Bybit --------------------------------------------------------------------------------------------------------
BYBIT_TICKER_DATA: dict[str, str] = {  # docs/v5/websocket/public/ticker, "Response Example" (its price fields)
    "symbol": "BTCUSDT", "tickDirection": "MinusTick", "price24hPcnt": "-0.158315", "lastPrice": "66666.60",
    "prevPrice24h": "79206.20", "highPrice24h": "79266.30", "lowPrice24h": "65076.90", "markPrice": "66666.60",
    "turnover24h": "4936790807.6521", "volume24h": "73191.3870", "nextFundingTime": "1760342400000",
}


def bybit_message(topic: str, kind: str, at: int, data: object, **extra: Any) -> str:
    return json.dumps({"topic": topic, "type": kind, "ts": at, "data": data, **extra}, separators=(",", ":"))


def bybit_sample_records(t0: int, steps: int = 5, spacing: int = 500) -> list[Record]:
    """``steps`` rounds, ``spacing`` ms apart, of Bybit's BTCUSDT ticker, trade and level-1 book, received 3 ms
    after their ``ts``; a subscribe ack first. The ticker and the book are a snapshot in step 0 and deltas after
    it: step ``s`` moves lastPrice to ``6666{s}.60`` and the best bid to ``6666{s}.50`` (u ``100 + s``, seq
    ``8000 + 3s``), and trades one row at ``6666{s}.00``, seq ``5000 + 3s``."""
    route = "/v5/public/linear"
    records = [Record(t0 - 50, route, '{"success":true,"ret_msg":"","conn_id":"c1","req_id":"1","op":"subscribe"}',
                      "bybit")]
    for step in range(steps):
        at = t0 + spacing * step
        kind = "snapshot" if step == 0 else "delta"
        ticker_data = dict(BYBIT_TICKER_DATA) if step == 0 else {"symbol": "BTCUSDT"}
        ticker_data["lastPrice"] = f"6666{step}.60"
        book = {"s": "BTCUSDT", "b": [[f"6666{step}.50", "1.5"]], "a": [] if step else [["66670.00", "2.0"]],
                "u": 100 + step, "seq": 8000 + 3 * step}
        trade = {"T": at - 2, "s": "BTCUSDT", "S": "Buy", "v": "0.001", "p": f"6666{step}.00", "L": "PlusTick",
                 "i": f"trade-{step}", "BT": False, "seq": 5000 + 3 * step}
        records += [
            Record(at + 3, route, bybit_message("tickers.BTCUSDT", kind, at, ticker_data, cs=9_000 + step), "bybit"),
            Record(at + 3, route, bybit_message("publicTrade.BTCUSDT", "snapshot", at, [trade]), "bybit"),
            Record(at + 3, route, bybit_message("orderbook.1.BTCUSDT", kind, at, book, cts=at - 1), "bybit"),
        ]
    return records
