// usePriceStream(symbols, {streams}): live prices, book tickers and trades from websocket-streaming in a React
// component. It subscribes on connect, subscribes again with `since` on every reconnect (so nothing is missed,
// or it says so in `recovery`), follows changes of `symbols` and `streams` without reconnecting, and closes its
// connection on unmount. It runs on the service's client, stream.js (PriceStream).
//
//   const { state, prices, books, trades, recovery, errors } = usePriceStream(["BTCUSDT"], { streams: ["ticker", "trade"] });
//
// Options: url (default: the page's origin), token (with authentication on), streams (default ["ticker"]),
// tradeLimit (trades kept per symbol, default 50), flushMs (updates are handed to React at most this often,
// default 100: a burst of trades makes one render, not one per trade), io (socket.io-client's, by default).
// Returns: state ("connecting" | "live" | "reconnecting" | "offline" | "unauthorized") and reason; prices and
// books (the latest price_update and book_ticker per symbol); trades (per symbol, oldest first); recovery (the
// last reconnect's {recovered: {"trade:BTCUSDT": true | false}}); errors (the service's error events, the last
// 20); positions; and stream, the PriceStream itself.
import { useEffect, useRef, useState } from "react";
import { io as socketIo } from "socket.io-client";
import { PriceStream } from "websocket-streaming/stream";

const ERRORS_KEPT = 20;

const empty = () => ({ state: "connecting", reason: "", prices: {}, books: {}, trades: {}, recovery: null,
                       errors: [], positions: {} });

const list = (values) => [...new Set(values.map((value) => String(value).trim().toUpperCase()).filter(Boolean))];

export function usePriceStream(symbols, { streams = ["ticker"], url, token, tradeLimit = 50, flushMs = 100,
                                          io = socketIo } = {}) {
  const [view, setView] = useState(empty);
  const [stream, setStream] = useState(null);
  const wanted = list(symbols);
  const wantedStreams = list(streams).map((s) => s.toLowerCase());
  const symbolsKey = wanted.join(",");
  const streamsKey = wantedStreams.join(",");
  const limit = useRef(tradeLimit);
  limit.current = tradeLimit;

  // one connection per url and token, closed on unmount (and by StrictMode's trial unmount)
  useEffect(() => {
    const client = new PriceStream(io, url, { token });
    let pending = [];
    let timer = null;
    const flush = () => {
      timer = null;
      const changes = pending;
      pending = [];
      setView((old) => apply(old, changes, client, limit.current));
    };
    const queue = (change) => {
      pending.push(change);
      if (timer === null) timer = setTimeout(flush, flushMs);
    };
    const offs = [
      client.on("state", (change) => queue({ type: "state", ...change })),
      client.on("update", ({ stream: kind, data }) => queue({ type: kind, data })),
      client.on("recovery", (recovery) => queue({ type: "recovery", recovery })),
      client.on("error", (error) => queue({ type: "error", error })),
    ];
    setView(empty());
    setStream(client);
    return () => {
      offs.forEach((off) => off());
      clearTimeout(timer);
      client.close();
    };
  }, [url, token, io, flushMs]);

  // what is wanted: new symbols and streams subscribed, removed ones unsubscribed (and out of the view)
  useEffect(() => {
    if (!stream) return;
    const keep = new Set(wanted);
    const removed = [];
    for (const [symbol, held] of Object.entries(stream.wanted())) {
      if (!keep.has(symbol)) {
        stream.drop([symbol]);
        removed.push([symbol, held]);
        continue;
      }
      const gone = held.filter((kind) => !wantedStreams.includes(kind));
      if (gone.length) {
        stream.drop([symbol], gone);
        removed.push([symbol, gone]);
      }
    }
    stream.want(wanted, wantedStreams);
    if (removed.length) setView((old) => forget(old, removed));
  }, [stream, symbolsKey, streamsKey]); // eslint-disable-line react-hooks/exhaustive-deps

  return { ...view, stream };
}

function apply(old, changes, client, tradeLimit) {
  const next = { ...old, prices: { ...old.prices }, books: { ...old.books }, trades: { ...old.trades } };
  for (const change of changes) {
    if (change.data && !client.holds(change.data.symbol, change.type)) continue; // dropped since it came
    if (change.type === "state") {
      next.state = change.state;
      next.reason = change.reason;
    } else if (change.type === "ticker") {
      next.prices[change.data.symbol] = change.data;
    } else if (change.type === "book") {
      next.books[change.data.symbol] = change.data;
    } else if (change.type === "trade") {
      const symbol = change.data.symbol;
      next.trades[symbol] = [...(next.trades[symbol] || []), change.data].slice(-tradeLimit);
    } else if (change.type === "recovery") {
      next.recovery = change.recovery;
    } else if (change.type === "error") {
      next.errors = [...next.errors, change.error].slice(-ERRORS_KEPT);
    }
  }
  next.positions = { ...client.positions };
  return next;
}

const VIEW_OF = { ticker: "prices", book: "books", trade: "trades" };

function forget(old, removed) {
  const next = { ...old, prices: { ...old.prices }, books: { ...old.books }, trades: { ...old.trades } };
  for (const [symbol, kinds] of removed) {
    for (const kind of kinds) delete next[VIEW_OF[kind]][symbol];
  }
  return next;
}
