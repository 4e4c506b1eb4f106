// Unit tests of streaming/dashboard/static/stream.js (PriceStream) with a fake socket: no network. Run by
// tests/unit/test_stream_js.py (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { PriceStream } from "../../../streaming/dashboard/static/stream.js";

class FakeSocket {
  constructor(options) {
    this.options = options;
    this.handlers = {};
    this.sent = [];
    this.active = true;
    this.connects = 0;
  }
  on(event, handler) { (this.handlers[event] ||= []).push(handler); }
  emit(event, payload) { this.sent.push([event, payload]); }
  close() { this.active = false; }
  connect() { this.connects += 1; }
  server(event, payload) { for (const handler of this.handlers[event] || []) handler(payload); }
}

function make(options = {}) {
  let socket;
  const stream = new PriceStream((...args) => (socket = new FakeSocket(args.at(-1))), "http://x", options);
  const seen = {};
  for (const type of ["state", "update", "recovery", "anomaly", "error", "status", "shutdown"]) {
    seen[type] = [];
    stream.on(type, (detail) => seen[type].push(detail));
  }
  return { stream, socket, seen };
}

const tick = (symbol, offset, epoch = "e1", extra = {}) => ({ symbol, price: 1, eventTime: 1, offset, epoch, ...extra });

test("what is wanted before the connection is subscribed on it, grouped by streams, with the token", () => {
  const { stream, socket, seen } = make({ token: "t0k" });
  assert.deepEqual(socket.options, { transports: ["websocket"], forceNew: true, auth: { token: "t0k" } });
  stream.want(["btcusdt", "ETHUSDT"], ["ticker", "book"]);
  stream.want(["BTCUSDT"], ["trade"]);
  assert.deepEqual(socket.sent, []);
  socket.server("connected", {});
  assert.equal(stream.state, "live");
  assert.deepEqual(seen.state, [{ state: "live", reason: "" }]);
  assert.deepEqual(socket.sent, [
    ["subscribe", { symbols: ["BTCUSDT"], streams: ["ticker", "trade", "book"], since: {} }],
    ["subscribe", { symbols: ["ETHUSDT"], streams: ["ticker", "book"], since: {} }],
  ]);
  assert.deepEqual(stream.want(["BTCUSDT"], ["ticker"]), [], "held already: nothing sent");
  assert.equal(socket.sent.length, 2);
});

test("positions: from the answer, then from each update; a snapshot at the answer's position is no duplicate", () => {
  const { stream, socket, seen } = make();
  stream.want(["BTCUSDT"], ["ticker"]);
  socket.server("connected", {});
  socket.server("subscribed", { symbols: ["BTCUSDT"], streams: ["ticker"], recovered: {},
                                positions: { "ticker:BTCUSDT": { offset: 7, epoch: "e1" } } });
  socket.server("price_update", tick("BTCUSDT", 7)); // the snapshot
  socket.server("price_update", tick("BTCUSDT", 7)); // the same again: dropped
  socket.server("price_update", tick("BTCUSDT", 8));
  socket.server("price_update", tick("BTCUSDT", 10)); // one skipped: delivered, and reported
  assert.deepEqual(seen.update.map((u) => [u.data.offset, u.first]), [[7, true], [8, false], [10, false]]);
  assert.deepEqual(seen.anomaly, [
    { channel: "ticker:BTCUSDT", kind: "duplicate", expected: 8, received: 7 },
    { channel: "ticker:BTCUSDT", kind: "gap", expected: 9, received: 10 },
  ]);
  assert.deepEqual(stream.positions, { "ticker:BTCUSDT": { offset: 10, epoch: "e1" } });
  socket.server("price_update", tick("BTCUSDT", 1, "e2")); // a new epoch starts over
  assert.deepEqual(stream.positions["ticker:BTCUSDT"], { offset: 1, epoch: "e2" });
  assert.equal(seen.update.length, 4);
});

test("after a reconnect: since with the positions kept; recovered channels keep theirs until the updates come", () => {
  const { stream, socket, seen } = make();
  stream.want(["BTCUSDT"], ["trade"]);
  socket.server("connected", {});
  socket.server("subscribed", { symbols: ["BTCUSDT"], streams: ["trade"], recovered: {},
                                positions: { "trade:BTCUSDT": { offset: 3, epoch: "e1" } } });
  socket.server("trade", tick("BTCUSDT", 4));
  socket.server("disconnect", "transport close");
  assert.equal(stream.state, "reconnecting");
  socket.server("connected", {});
  assert.deepEqual(socket.sent.at(-1), ["subscribe", { symbols: ["BTCUSDT"], streams: ["trade"],
                                                       since: { "trade:BTCUSDT": { offset: 4, epoch: "e1" } } }]);
  socket.server("subscribed", { symbols: ["BTCUSDT"], streams: ["trade"], recovered: { "trade:BTCUSDT": true },
                                positions: { "trade:BTCUSDT": { offset: 6, epoch: "e1" } } });
  assert.deepEqual(stream.positions["trade:BTCUSDT"], { offset: 4, epoch: "e1" }, "not jumped to 6");
  assert.deepEqual(seen.recovery, [{ recovered: { "trade:BTCUSDT": true }, reconnect: true }]);
  socket.server("trade", tick("BTCUSDT", 5, "e1", { recovered: true }));
  socket.server("trade", tick("BTCUSDT", 6, "e1", { recovered: true }));
  socket.server("trade", tick("BTCUSDT", 7));
  assert.deepEqual(seen.update.map((u) => u.data.offset), [4, 5, 6, 7]);
  assert.deepEqual(seen.anomaly, []);
});

test("drop unsubscribes, forgets the positions and ignores late updates; refused symbols are no longer wanted", () => {
  const { stream, socket, seen } = make();
  stream.want(["BTCUSDT", "ETHUSDT"], ["ticker", "book"]);
  socket.server("connected", {});
  socket.server("book_ticker", tick("ETHUSDT", 1));
  assert.deepEqual(stream.drop(["ETHUSDT"], ["book"]), ["ETHUSDT"]);
  assert.deepEqual(socket.sent.at(-1), ["unsubscribe", { symbols: ["ETHUSDT"], streams: ["book"] }]);
  assert.equal(stream.positions["book:ETHUSDT"], undefined);
  socket.server("book_ticker", tick("ETHUSDT", 2));
  assert.equal(seen.update.length, 1, "a late one after the unsubscribe is not delivered");
  socket.server("error", { code: "UNKNOWN_SYMBOL", message: "unknown symbol", event: "subscribe",
                           symbols: ["btcusdt"] });
  assert.deepEqual(stream.wanted(), { ETHUSDT: ["ticker"] });
  assert.equal(seen.error[0].message, "unknown symbol");
});

test("refusals: retried later when they are for now; unauthorized says so; close is final", async () => {
  const { stream, socket } = make({ retryDelay: 5 });
  socket.active = false; // socket.io-client does not retry a refusal by itself
  socket.server("connect_error", Object.assign(new Error("full"), { data: { code: "TOO_MANY_CONNECTIONS" } }));
  assert.equal(stream.state, "reconnecting");
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(socket.connects, 1);
  socket.server("connect_error", Object.assign(new Error("invalid token"), { data: { code: "UNAUTHORIZED" } }));
  assert.deepEqual([stream.state, stream.reason], ["unauthorized", "invalid token"]);
  stream.close();
  assert.equal(stream.state, "offline");
  socket.server("connect_error", Object.assign(new Error("full"), { data: { code: "TOO_MANY_CONNECTIONS" } }));
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(socket.connects, 1, "no retry after close");
});
