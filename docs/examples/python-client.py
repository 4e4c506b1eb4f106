"""Python client for websocket-streaming (python-socketio).

    python docs/examples/python-client.py [--url http://localhost:5021] [--symbols BTCUSDT,ETHUSDT] [--count N]

Prints one JSON line per event; with --count it exits after N price updates.
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
    parser.add_argument("--count", type=int, default=0, help="exit after this many price updates (0: never)")
    args = parser.parse_args()
    symbols = args.symbols.split(",")
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
        sio.emit("subscribe", {"symbols": symbols})

    @sio.on("subscribed")
    def on_subscribed(data: dict) -> None:
        show("subscribed", data)

    @sio.on("error")
    def on_error(data: dict) -> None:
        show("error", data)

    @sio.on("price_update")
    def on_price_update(update: dict) -> None:
        nonlocal received
        show("price_update", update)
        received += 1
        if args.count and received >= args.count:
            done.set()

    sio.connect(args.url, transports=["websocket"])
    try:
        done.wait() if args.count else sio.wait()
    finally:
        sio.disconnect()


if __name__ == "__main__":
    main()
