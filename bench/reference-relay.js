// A minimal reference relay for bench/perf.py: the service's Socket.IO contract (connected, subscribe/subscribed
// with an acknowledgement, unsubscribe, price_update to a room per symbol) on Node's socket.io server, fed by the
// fake exchange's combined stream. It exists only to give the benchmark a yardstick: the same clients, the same
// fake and the same measurement against the smallest relay that keeps the contract.
//
//   node bench/reference-relay.js --port 5099 --upstream ws://127.0.0.1:9000 --symbols BTCUSDT,ETHUSDT
//
// GET /ready answers 200 once every symbol has had a tick. SIGTERM/SIGINT close everything and exit 0.
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
const WELCOME = "Connected to WebSocket Streaming Service";
const RECONNECT_DELAY_MS = 1000;

const latest = new Map(); // symbol -> last price_update payload sent (also what a new subscriber gets at once)
let upstream = null;
let stopping = false;

/** Binance's 24hrTicker fields as the service's price_update payload (streaming/core/models.py Ticker.to_wire). */
function toWire(t) {
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

const server = http.createServer((req, res) => {
  const ready = [...symbols].every((s) => latest.has(s));
  const status = req.url === "/ready" ? (ready ? 200 : 503) : 404;
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify({ ready, symbols: latest.size }));
});
const io = new Server(server, { cors: { origin: "*" }, serveClient: false, maxHttpBufferSize: 262144 });

/** Emit a tick to its room unless it is not newer than the last one (the service's ordering rule). */
function publish(ticker) {
  if (!ticker || ticker.e !== "24hrTicker" || !symbols.has(ticker.s)) return;
  const previous = latest.get(ticker.s);
  if (previous !== undefined && ticker.E <= previous.eventTime) return;
  const update = toWire(ticker);
  latest.set(ticker.s, update);
  io.to(ticker.s).emit("price_update", update);
}

function connectUpstream() {
  const streams = [...symbols].map((s) => `${s.toLowerCase()}@ticker`).join("/");
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

/** The validated, upper-cased, de-duplicated symbols of a {symbols: [...]} request, or an error payload. */
function parseRequest(event, data) {
  if (!data || !Array.isArray(data.symbols) || data.symbols.length === 0) {
    return { error: { code: "INVALID_REQUEST", message: "expected {symbols: [...]}", event } };
  }
  const wanted = [...new Set(data.symbols.filter((s) => typeof s === "string").map((s) => s.toUpperCase()))];
  const unknown = wanted.filter((s) => !symbols.has(s));
  return { accepted: wanted.filter((s) => symbols.has(s)), unknown };
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
  apply(parsed.accepted);
  const verb = event === "subscribe" ? "Subscribed to" : "Unsubscribed from";
  const answer = { symbols: parsed.accepted, message: `${verb} ${parsed.accepted.length} symbols` };
  socket.emit(answerEvent, answer);
  if (typeof ack === "function") ack(answer);
  if (event === "subscribe") {
    for (const symbol of parsed.accepted) if (latest.has(symbol)) socket.emit("price_update", latest.get(symbol));
  }
}

io.on("connection", (socket) => {
  socket.emit("connected", { message: WELCOME, client_id: socket.id });
  socket.on("subscribe", (data, ack) => answerWith(socket, "subscribe", "subscribed", data, ack,
    (accepted) => socket.join(accepted)));
  socket.on("unsubscribe", (data, ack) => answerWith(socket, "unsubscribe", "unsubscribed", data, ack,
    (accepted) => accepted.forEach((s) => socket.leave(s))));
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
