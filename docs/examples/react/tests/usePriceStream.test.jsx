// usePriceStream against a running service: SERVICE_URL (tests/e2e/test_react_kit.py starts one against the
// fake exchange and runs this). Each hook runs under StrictMode, as in an app in development.
import { act, renderHook, waitFor } from "@testing-library/react";
import { StrictMode } from "react";
import { expect, test } from "vitest";
import { usePriceStream } from "../src/usePriceStream.js";

const url = process.env.SERVICE_URL;
if (!url) throw new Error("set SERVICE_URL to a running websocket-streaming (tests/e2e/test_react_kit.py does)");
const LONG = { timeout: 15000, interval: 50 };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function render(initialProps, options = {}) {
  return renderHook(({ symbols, streams }) => usePriceStream(symbols, { url, streams, ...options }),
                    { initialProps, wrapper: StrictMode });
}

const consecutive = (values) => values.every((value, i) => i === 0 || value === values[i - 1] + 1);

test("subscribes on connect: BTCUSDT's ticker and trades, each trade once and in order", async () => {
  const { result, unmount } = render({ symbols: ["btcusdt"], streams: ["ticker", "trade"] });
  await waitFor(() => expect(result.current.state).toBe("live"), LONG);
  await waitFor(() => expect(result.current.prices.BTCUSDT?.price).toBeGreaterThan(0), LONG);
  await waitFor(() => expect(result.current.trades.BTCUSDT?.length ?? 0).toBeGreaterThanOrEqual(5), LONG);
  const trades = result.current.trades.BTCUSDT;
  expect(consecutive(trades.map((t) => t.offset))).toBe(true);
  expect(consecutive(trades.map((t) => t.id))).toBe(true);
  expect(result.current.positions["trade:BTCUSDT"]).toEqual({ offset: trades.at(-1).offset,
                                                              epoch: trades.at(-1).epoch });
  expect(result.current.books).toEqual({});
  unmount();
});

test("a new symbol list streams the new symbols and drops the old ones, on the same connection", async () => {
  const { result, rerender, unmount } = render({ symbols: ["BTCUSDT"], streams: ["ticker", "book"] });
  await waitFor(() => expect(result.current.books.BTCUSDT?.bid).toBeGreaterThan(0), LONG);
  const stream = result.current.stream;
  const id = stream.socket.id;
  rerender({ symbols: ["ETHUSDT"], streams: ["ticker", "book"] });
  await waitFor(() => expect(result.current.prices.ETHUSDT?.price).toBeGreaterThan(0), LONG);
  expect(result.current.prices.BTCUSDT).toBeUndefined();
  expect(result.current.books.BTCUSDT).toBeUndefined();
  const eth = result.current.prices.ETHUSDT.offset;
  await sleep(1000); // the fake ticks every 0.2 s: BTCUSDT would be back by now if it were still streamed
  expect(result.current.prices.BTCUSDT).toBeUndefined();
  expect(result.current.prices.ETHUSDT.offset).toBeGreaterThan(eth);
  expect(stream.wanted()).toEqual({ ETHUSDT: ["ticker", "book"] });
  expect(result.current.stream).toBe(stream);
  expect(stream.socket.id).toBe(id);
  rerender({ symbols: ["ETHUSDT"], streams: ["book"] }); // a stream less
  await waitFor(() => expect(result.current.prices.ETHUSDT).toBeUndefined(), LONG);
  expect(stream.wanted()).toEqual({ ETHUSDT: ["book"] });
  unmount();
});

test("after a lost connection it reconnects and recovers what it missed: no trade twice, none missing", async () => {
  const { result, unmount } = render({ symbols: ["BTCUSDT"], streams: ["trade"] }, { tradeLimit: 1000 });
  await waitFor(() => expect(result.current.trades.BTCUSDT?.length ?? 0).toBeGreaterThanOrEqual(3), LONG);
  const stream = result.current.stream;
  const states = [];
  stream.on("state", ({ state }) => states.push(state));
  const before = result.current.trades.BTCUSDT.length;
  act(() => stream.socket.io.engine.close()); // the transport closed under it, as when the network drops
  await waitFor(() => expect(result.current.recovery).not.toBeNull(), LONG);
  expect(states).toEqual(["reconnecting", "live"]);
  expect(result.current.recovery).toEqual({ recovered: { "trade:BTCUSDT": true }, reconnect: true });
  await waitFor(() => expect(result.current.trades.BTCUSDT.filter((t) => !t.recovered).length)
    .toBeGreaterThan(before + 3), LONG);
  const trades = result.current.trades.BTCUSDT;
  expect(trades.some((t) => t.recovered)).toBe(true);
  expect(consecutive(trades.map((t) => t.offset))).toBe(true);
  expect(consecutive(trades.map((t) => t.id))).toBe(true);
  unmount();
});

test("unmounting closes the connection", async () => {
  const { result, unmount } = render({ symbols: ["SOLUSDT"], streams: ["ticker"] });
  await waitFor(() => expect(result.current.prices.SOLUSDT).toBeDefined(), LONG);
  const stream = result.current.stream;
  expect(stream.socket.connected).toBe(true);
  unmount();
  expect(stream.socket.connected).toBe(false);
  expect(stream.state).toBe("offline");
  await sleep(1500); // and it does not come back by itself
  expect(stream.socket.connected).toBe(false);
});
