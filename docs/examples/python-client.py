"""Python client for websocket-streaming (python-socketio's asyncio client).

    python docs/examples/python-client.py [--url http://localhost:5021] [--symbols BTCUSDT,ETHUSDT]
                                          [--streams ticker,trade,book] [--count N] [--positions FILE]

Prints one JSON line per event; with --count it exits after N updates (price_update, trade, book_ticker).
After a lost connection it reconnects by itself and gets what it missed meanwhile (README, "Recovering after a
reconnect"). With --positions it keeps its positions in FILE, so that a run started again later gets what was
missed since the last one (as long as the service still holds it: RECOVERY_GRACE, history retention). The
asyncio client runs handlers one at a time in the order the events arrived, which keeping
positions needs (python-socketio's threaded `socketio.Client` runs each event's handler in a thread of its own).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

import socketio

STREAM_OF = {"price_update": "ticker", "trade": "trade", "book_ticker": "book"}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://localhost:5021")
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    parser.add_argument("--streams", default="ticker", help="ticker, trade and/or book, comma-separated")
    parser.add_argument("--count", type=int, default=0, help="exit after this many updates (0: never)")
    parser.add_argument("--positions", default="", help="a file to keep the positions in, from run to run")
    args = parser.parse_args()
    symbols = args.symbols.split(",")
    streams = args.streams.split(",")
    done = asyncio.Event()
    received = 0
    # The last position seen on each channel: {"trade:BTCUSDT": {"offset": ..., "epoch": ...}, ...}, sent back as
    # `since` when subscribing again after a reconnect.
    positions: dict[str, dict] = {}
    if args.positions and os.path.exists(args.positions):
        with open(args.positions) as file:
            positions.update(json.load(file))
    sio = socketio.AsyncClient()

    def save_positions() -> None:
        if args.positions:
            with open(args.positions + ".tmp", "w") as file:
                json.dump(positions, file)
            os.replace(args.positions + ".tmp", args.positions)  # whole or not at all, even if stopped halfway

    async def keep_positions() -> None:
        while True:
            await asyncio.sleep(1)
            save_positions()

    def show(event: str, data: object) -> None:
        print(json.dumps({"event": event, "data": data}), flush=True)

    @sio.on("connected")  # comes on every connection: the first one and each automatic reconnection
    async def on_connected(data: dict) -> None:
        show("connected", data)
        await sio.emit("subscribe", {"symbols": symbols, "streams": streams, "since": positions})

    @sio.on("subscribed")
    def on_subscribed(answer: dict) -> None:
        show("subscribed", answer)
        recovered = answer.get("recovered", {})
        for channel, position in answer.get("positions", {}).items():
            if recovered.get(channel) is False:
                # the epoch changed or too much was missed: start over from here (tickers and book tickers come
                # with their latest; trades missed meanwhile are in GET /trades/<SYMBOL>)
                print(f"{channel}: could not recover what was missed; starting over", file=sys.stderr)
            # recovered: the missed updates follow and move the position themselves (should the connection drop
            # again halfway, it must be the last one received, not this one)
            if not recovered.get(channel):
                positions[channel] = position

    @sio.on("error")
    def on_error(data: dict) -> None:
        show("error", data)

    @sio.on("disconnect")
    def on_disconnect(reason: str) -> None:
        if reason != sio.reason.CLIENT_DISCONNECT:
            print(f"connection lost ({reason}); reconnecting", file=sys.stderr)

    def on_update(event: str, stream: str) -> None:
        def handle(update: dict) -> None:
            nonlocal received
            # the last one received, always (a new epoch replaces the old position); absent without history
            if "epoch" in update:
                positions[f"{stream}:{update['symbol']}"] = {"offset": update["offset"], "epoch": update["epoch"]}
            show(event, update)
            received += 1
            if args.count and received >= args.count:
                done.set()

        sio.on(event, handle)

    for event, stream in STREAM_OF.items():
        on_update(event, stream)

    loop = asyncio.get_running_loop()
    for stop in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop, done.set)
    keeper = asyncio.create_task(keep_positions()) if args.positions else None
    await sio.connect(args.url, transports=["websocket"])
    try:
        await done.wait()
    finally:
        if keeper:
            keeper.cancel()
        await sio.disconnect()
        save_positions()


if __name__ == "__main__":
    asyncio.run(main())
