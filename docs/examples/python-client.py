"""Python client for websocket-streaming (python-socketio).

    python docs/examples/python-client.py [--url http://localhost:5021] [--symbols BTCUSDT,ETHUSDT]
                                          [--streams ticker,trade,book] [--count N]

Prints one JSON line per event; with --count it exits after N updates (price_update, trade, book_ticker).
"""
from __future__ import annotations

import argparse
import json
import threading

import socketio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://localhost:5021")
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    parser.add_argument("--streams", default="ticker", help="ticker, trade and/or book, comma-separated")
    parser.add_argument("--count", type=int, default=0, help="exit after this many updates (0: never)")
    args = parser.parse_args()
    symbols = args.symbols.split(",")
    streams = args.streams.split(",")
    done = threading.Event()
    received = 0
    sio = socketio.Client()

    printing = threading.Lock()  # handlers run on several threads: one whole line at a time

    def show(event: str, data: object) -> None:
        with printing:
            print(json.dumps({"event": event, "data": data}), flush=True)

    @sio.on("connected")
    def on_connected(data: dict) -> None:
        show("connected", data)
        sio.emit("subscribe", {"symbols": symbols, "streams": streams})

    @sio.on("subscribed")
    def on_subscribed(data: dict) -> None:
        show("subscribed", data)

    @sio.on("error")
    def on_error(data: dict) -> None:
        show("error", data)

    def on_update(event: str) -> None:
        def handle(update: dict) -> None:
            nonlocal received
            show(event, update)
            with printing:
                received += 1
                if args.count and received >= args.count:
                    done.set()

        sio.on(event, handle)

    for event in ("price_update", "trade", "book_ticker"):
        on_update(event)

    sio.connect(args.url, transports=["websocket"])
    try:
        done.wait() if args.count else sio.wait()
    finally:
        sio.disconnect()


if __name__ == "__main__":
    main()
