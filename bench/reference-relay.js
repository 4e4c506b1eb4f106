// A minimal reference relay for bench/perf.py: the service's Socket.IO contract (connected, subscribe/subscribed
// with an acknowledgement, unsubscribe, price_update and trade to a room per stream and symbol) on Node's socket.io
// server, fed by the fake exchange's combined stream. It exists only to give the benchmark a yardstick: the same
// clients, the same fake and the same measurement against the smallest relay that keeps the contract.
//
//   node bench/reference-relay.js --port 5099 --upstream ws://127.0.0.1:9000 --symbols BTCUSDT,ETHUSDT \
//                                 [--streams ticker,trade]
//
// --streams names the kinds it relays (default: ticker only); the upstream carries `<symbol>@ticker` and, with
// `trade`, `<symbol>@aggTrade` of every symbol from the start. A client subscribes with {symbols, streams} (no
// streams: ["ticker"]) and joins the room `<stream>:<SYMBOL>` of each; unsubscribe without streams leaves them all.
//
// GET /ready answers 200 once every symbol has had an update. SIGTERM/SIGINT close everything and exit 0.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

// socket.io's own dependency `ws`; Node 22+ would also have a global WebSocket with the same browser-style API.
let WebSocketClass;
try {
  WebSocketClass = require("ws");
} catch (err) {
  WebSocketClass = globalThis.WebSocket;
}

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1] : fallback;
}

const port = Number(option("port", "5099"));
const host = option("host", "127.0.0.1");
const upstreamBase = option("upstream", "ws://127.0.0.1:9000");
const symbols = new Set(option("symbols", "BTCUSDT").split(",").filter(Boolean).map((s) => s.toUpperCase()));
const kinds = new Set(option("streams", "ticker").split(",").filter(Boolean));
const WELCOME = "Connected to WebSocket Streaming Service";
const RECONNECT_DELAY_MS = 1000;

const latest = new Map(); // symbol -> last price_update payload sent (also what a new subscriber gets at once)
const lastTradeIds = new Map(); // symbol -> id of the last trade sent
const heard = new Set(); // symbols that have had an update of a relayed stream
let upstream = null;
let stopping = false;

/** Binance's 24hrTicker fields as the service's price_update payload (streaming/core/models.py Ticker.to_wire). */
function tickerToWire(t) {
  return {
    symbol: t.s,
    price: Number(t.c),
    volume: Number(t.v),
    high: Number(t.h),
    low: Number(t.l),
    change: Number(t.p),
    changePercent: Number(t.P),
    open: Number(t.o),
    quoteVolume: Number(t.q),
    timestamp: new Date(t.E).toISOString(),
    eventTime: t.E,
  };
}

/** Binance's aggTrade fields as the service's trade payload (streaming/core/models.py Trade.to_wire). */
function tradeToWire(t) {
  return {
    symbol: t.s,
    exchange: "binance",
    id: t.a,
    price: Number(t.p),
    quantity: Number(t.q),
    side: t.m ? "sell" : "buy",
    firstTradeId: t.f,
    lastTradeId: t.l,
    tradeTime: t.T,
    eventTime: t.E,
    timestamp: new Date(t.T).toISOString(),
  };
}

/** Per kind: the upstream stream suffix and event, the Socket.IO event, and how a payload becomes one. */
const KINDS = {
  ticker: { suffix: "@ticker", upstreamEvent: "24hrTicker", event: "price_update", toWire: tickerToWire },
  trade: { suffix: "@aggTrade", upstreamEvent: "aggTrade", event: "trade", toWire: tradeToWire },
};
const KIND_BY_EVENT = new Map(Object.entries(KINDS).map(([name, kind]) => [kind.upstreamEvent, name]));

function room(kind, symbol) {
  return `${kind}:${symbol}`;
}

const server = http.createServer((req, res) => {
  const ready = [...symbols].every((s) => heard.has(s));
  const status = req.url === "/ready" ? (ready ? 200 : 503) : 404;
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify({ ready, symbols: heard.size }));
});
const io = new Server(server, { cors: { origin: "*" }, serveClient: false, maxHttpBufferSize: 262144 });

/** Whether an upstream payload of `kind` is newer than the last one sent for its symbol (the service's ordering
 * rule: a later event time for tickers, a higher aggregate trade id for trades); remembers it if so. */
function isNewer(kind, row) {
  if (kind === "trade") {
    if (row.a <= (lastTradeIds.get(row.s) ?? -1)) return false;
    lastTradeIds.set(row.s, row.a);
    return true;
  }
  const previous = latest.get(row.s);
  return previous === undefined || row.E > previous.eventTime;
}

/** Emit an upstream payload to its room unless it is not newer than the last one. */
function publish(row) {
  const kind = row && KIND_BY_EVENT.get(row.e);
  if (kind === undefined || !kinds.has(kind) || !symbols.has(row.s) || !isNewer(kind, row)) return;
  const update = KINDS[kind].toWire(row);
  heard.add(row.s);
  if (kind === "ticker") latest.set(row.s, update);
  io.to(room(kind, row.s)).emit(KINDS[kind].event, update);
}

function connectUpstream() {
  const streams = [...symbols].flatMap((s) => [...kinds].map((kind) => s.toLowerCase() + KINDS[kind].suffix))
    .join("/");
  upstream = new WebSocketClass(`${upstreamBase}/market/stream?streams=${streams}`);
  upstream.onmessage = (event) => {
    let frame;
    try {
      frame = JSON.parse(typeof event.data === "string" ? event.data : event.data.toString());
    } catch (err) {
      return;
    }
    publish(frame && frame.data);
  };
  upstream.onerror = () => {}; // a close follows; reconnecting there is enough
  upstream.onclose = () => {
    if (!stopping) setTimeout(connectUpstream, RECONNECT_DELAY_MS);
  };
}

/** The validated, upper-cased, de-duplicated symbols and the streams of a {symbols: [...], streams?: [...]}
 * request, or an error payload. */
function parseRequest(event, data) {
  if (!data || !Array.isArray(data.symbols) || data.symbols.length === 0) {
    return { error: { code: "INVALID_REQUEST", message: "expected {symbols: [...]}", event } };
  }
  const fallback = event === "subscribe" ? ["ticker"] : [...kinds]; // unsubscribe: every stream of the symbols
  const streams = data.streams === undefined ? fallback : data.streams;
  if (!Array.isArray(streams) || streams.length === 0 || !streams.every((k) => kinds.has(k))) {
    return { error: { code: "INVALID_REQUEST", message: `streams must be some of ${[...kinds]}`, event } };
  }
  const wanted = [...new Set(data.symbols.filter((s) => typeof s === "string").map((s) => s.toUpperCase()))];
  const unknown = wanted.filter((s) => !symbols.has(s));
  return { accepted: wanted.filter((s) => symbols.has(s)), unknown, streams: [...new Set(streams)] };
}

/** The rooms of a parsed request: one per stream and symbol. */
function roomsOf(parsed) {
  return parsed.streams.flatMap((kind) => parsed.accepted.map((symbol) => room(kind, symbol)));
}

function answerWith(socket, event, answerEvent, data, ack, apply) {
  const parsed = parseRequest(event, data);
  if (parsed.error) {
    socket.emit("error", parsed.error);
    if (typeof ack === "function") ack(parsed.error);
    return;
  }
  if (parsed.unknown.length) {
    socket.emit("error", { code: "UNKNOWN_SYMBOL", message: "not relayed here", event, symbols: parsed.unknown });
  }
  apply(roomsOf(parsed));
  const verb = event === "subscribe" ? "Subscribed to" : "Unsubscribed from";
  const answer = { symbols: parsed.accepted, streams: parsed.streams,
                   message: `${verb} ${parsed.accepted.length} symbols` };
  socket.emit(answerEvent, answer);
  if (typeof ack === "function") ack(answer);
  if (event === "subscribe" && parsed.streams.includes("ticker")) { // trades are events: no snapshot
    for (const symbol of parsed.accepted) if (latest.has(symbol)) socket.emit("price_update", latest.get(symbol));
  }
}

io.on("connection", (socket) => {
  socket.emit("connected", { message: WELCOME, client_id: socket.id });
  socket.on("subscribe", (data, ack) => answerWith(socket, "subscribe", "subscribed", data, ack,
    (rooms) => socket.join(rooms)));
  socket.on("unsubscribe", (data, ack) => answerWith(socket, "unsubscribe", "unsubscribed", data, ack,
    (rooms) => rooms.forEach((r) => socket.leave(r))));
});

function stop() {
  stopping = true;
  if (upstream) upstream.close();
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on("SIGTERM", stop);
process.on("SIGINT", stop);
server.listen(port, host, () => {
  console.log(`reference relay listening on http://${host}:${port}`);
  connectUpstream();
});
