// Load generator for bench/perf.py: a slice of the benchmark's clients, each a real socket.io-client v4 socket
// with its own WebSocket connection (transport "websocket" only, no multiplexing, and no reconnection unless
// --reconnect, so a failure is counted instead of being hidden by a retry).
//
//   node bench/loadgen.js --url http://127.0.0.1:PORT --clients 250 --first 0 --symbols BTCUSDT,ETHUSDT,...
//                         --per-client 2 [--kind ticker|trade] [--exchange bybit] [--concurrency 50]
//                         [--connect-timeout 20000] [--phase-seconds 60] [--max-seconds 900] [--reconnect]
//
// --kind says what the clients subscribe to and count: `ticker` (the default) subscribes {symbols} and counts
// price_updates, one per (symbol, eventTime); `trade` subscribes {symbols, streams: ["trade"]} and counts trade
// events, one per (symbol, id), the aggregate trade id. Either way an update belongs to the window by its
// eventTime, and its latency is the time of receipt minus its eventTime. --exchange names the exchange in the
// subscribe request (`subscribe {symbols, exchange}`; none: the service's default, Binance), and then only updates
// of that exchange count (any other is counted apart as `foreign`).
//
// The driver talks to it with one JSON object per line. stdin (commands): {"cmd":"subscribe"},
// {"cmd":"window","from":EPOCH_MS,"to":EPOCH_MS}, {"cmd":"progress"}, {"cmd":"report"}, {"cmd":"exit"}. stdout
// (answers): {"type":"connected",...} once every connect attempt has ended, {"type":"subscribed",...},
// {"type":"progress","received":N}, {"type":"report",...}. Only updates whose eventTime lies in the window are
// counted, whenever they arrive, so a window's edges cut no tick in two; after the window the driver asks for
// progress until the count stops growing, and only then for the report.
//
// --reconnect (the `storm` scenario): each client behaves like the README's clients after a lost connection.
// socket.io-client's own reconnection (its defaults: 1 s first delay, doubling to 5 s, randomised by half) brings
// it back; on every connection after the first it subscribes again with `since`: the last position it had on each
// channel, from `subscribed.positions` and the updates' {offset, epoch}. A refusal that is only for now
// (SERVER_SHUTTING_DOWN, TOO_MANY_CONNECTIONS: socket.io-client does not retry a refusal) is retried after 2 s, as
// the examples do. {"cmd":"storm","t0":EPOCH_MS} marks the restart; from then each client notes when it was back
// (subscribed again) and when its first live update came: the first one on a connection made after t0 with an
// eventTime at or after t0, a price made since the restart began (a recovered one counts: the missed updates come
// in one burst, ending with the latest). {"cmd":"storm-progress"} answers {"type":"storm-progress","live":N,"waiting":N} and
// {"cmd":"storm-report"} the figures per client (see stormReport).
"use strict";

const readline = require("readline");
const { io } = require("socket.io-client");

/** The value after `--name` on the command line, else `fallback`. */
function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1] : fallback;
}

/** Per --kind: the Socket.IO event counted, the payload field that tells one update from another (increasing
 * per symbol), and the `streams` of the subscribe request (none: the service's default, tickers). */
const KINDS = {
  ticker: { event: "price_update", key: "eventTime", streams: undefined },
  trade: { event: "trade", key: "id", streams: ["trade"] },
};

const config = {
  url: option("url", "http://127.0.0.1:5021"),
  clients: Number(option("clients", "10")),
  first: Number(option("first", "0")), // global index of this slice's first client: spreads the symbols evenly
  symbols: option("symbols", "BTCUSDT").split(",").filter(Boolean),
  perClient: Number(option("per-client", "1")),
  concurrency: Number(option("concurrency", "50")), // connects (and subscribes) in flight at once
  connectTimeout: Number(option("connect-timeout", "20000")),
  phaseSeconds: Number(option("phase-seconds", "60")), // no new connect (subscribe) starts after this long
  maxSeconds: Number(option("max-seconds", "900")), // a worker orphaned by its driver still ends
  exchange: option("exchange", undefined), // undefined: not named in the subscribe request (Binance)
  reconnect: process.argv.includes("--reconnect"),
};
// Refusals socket.io-client leaves to the application: retried after RETRY_REFUSED_MS (README, "Errors").
const RETRIED_REFUSALS = new Set(["SERVER_SHUTTING_DOWN", "TOO_MANY_CONNECTIONS"]);
const RETRY_REFUSED_MS = 2000;
const kind = KINDS[option("kind", "ticker")];
if (kind === undefined) throw new Error(`loadgen: --kind must be one of ${Object.keys(KINDS).join(", ")}`);

const stats = {
  window: { from: Infinity, to: -Infinity },
  received: 0, // updates with an eventTime in the window, duplicates included
  duplicates: 0, // same symbol and key (eventTime, or trade id) twice on one client
  outOfOrder: 0, // a key older than the newest one the client already had for that symbol (not a duplicate)
  outside: 0, // updates outside the window (warm-up, the cached price sent on subscribe, ...)
  foreign: 0, // updates of another exchange than --exchange (none expected)
  latency: new Map(), // whole milliseconds (Date.now() - eventTime) -> count
  union: new Map(), // symbol -> Set of keys any client of this slice saw in the window
  disconnects: new Map(), // reason -> count, for clients that were connected
  errors: new Map(), // code -> count of the `error` events the server sent (e.g. SLOW_CONSUMER before a cut-off)
};

/** The restart of the `storm` scenario, as this slice saw it (t0: null until {"cmd":"storm"}). */
const storm = {
  t0: null,
  refused: new Map(), // refusal code (or connect_error message) -> count, after t0
  attempts: 0, // reconnection attempts after t0 (socket.io-client's reconnect_attempt, and the refusals retried)
  recovered: 0, // updates marked `recovered: true` (what the service re-sent of what a client missed)
  recoveredChannels: { true: 0, false: 0 }, // subscribed.recovered of the `since` subscribes after t0
  missed: 0, // updates skipped on a channel, by offset (same epoch): neither sent live nor recovered
  repeated: 0, // updates whose offset the client already had (same epoch)
  epochChanged: 0, // channels whose epoch changed across the restart (their position could not be recovered)
  closedAt: [], // ms after t0 of each connection's end (the old process closing it)
  failedAt: [], // ms after t0 of each failed reconnection attempt (refused, reset, timed out)
  connectedAt: [], // ms after t0 of each Socket.IO connect (before its subscribe)
};

/** `clients` records: a socket, the symbols it asks for, per symbol the keys it got in the window and the newest
 * key it got at all (in the window or not). */
const clients = [];

function send(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function bump(map, key) {
  map.set(key, (map.get(key) || 0) + 1);
}

/** K of the S symbols, rotating with the client's global index so every symbol gets the same audience. */
function symbolsFor(index) {
  const chosen = [];
  for (let j = 0; j < config.perClient; j += 1) {
    chosen.push(config.symbols[(index * config.perClient + j) % config.symbols.length]);
  }
  return chosen;
}

/** The channel of an update of the kind counted (`ticker:BTCUSDT`; on another exchange `bybit:ticker:BTCUSDT`). */
function channelOf(symbol) {
  const name = `${kind.streams ? kind.streams[0] : "ticker"}:${symbol}`;
  return config.exchange === undefined || config.exchange === "binance" ? name : `${config.exchange}:${name}`;
}

/** --reconnect: keep the client's position on the update's channel, count what the restart cost it (offsets
 * skipped or repeated), and note its first live update on a connection made after t0. */
function followPosition(client, update) {
  if (update.recovered === true) storm.recovered += 1;
  if (update.epoch !== undefined) {
    const channel = channelOf(update.symbol);
    const last = client.positions[channel];
    if (last !== undefined && last.epoch === update.epoch) {
      if (update.offset > last.offset + 1) storm.missed += update.offset - last.offset - 1;
      else if (update.offset <= last.offset) storm.repeated += 1;
    } else if (last !== undefined && storm.t0 !== null) {
      storm.epochChanged += 1;
    }
    if (last === undefined || last.epoch !== update.epoch || update.offset > last.offset) {
      client.positions[channel] = { offset: update.offset, epoch: update.epoch };
    }
  }
  if (storm.t0 === null || client.generation <= client.generationAtT0) return;
  if (client.live === null && update.eventTime >= storm.t0) client.live = Date.now();
  // the age on receipt of the first update sent live (not recovered): the snapshot, or the next tick
  if (client.firstAge === null && update.recovered !== true) client.firstAge = Math.max(0, Date.now() - update.eventTime);
}

/** Count one delivery: latency, duplicates, out-of-order deliveries and the distinct keys per symbol. Kept
 * cheap: it runs per update. */
function onUpdate(client, update) {
  if (config.exchange !== undefined && update.exchange !== config.exchange) {
    stats.foreign += 1;
    return;
  }
  if (config.reconnect) followPosition(client, update);
  const eventTime = update.eventTime;
  const key = update[kind.key];
  const newest = client.newest.get(update.symbol);
  if (newest === undefined || key > newest) client.newest.set(update.symbol, key);
  if (!(eventTime >= stats.window.from && eventTime < stats.window.to)) {
    stats.outside += 1;
    return;
  }
  stats.received += 1;
  bump(stats.latency, Math.max(0, Date.now() - eventTime));
  let seen = client.seen.get(update.symbol);
  if (seen === undefined) {
    seen = new Set();
    client.seen.set(update.symbol, seen);
  }
  if (seen.has(key)) {
    stats.duplicates += 1;
    return;
  }
  if (key < newest) stats.outOfOrder += 1; // older than one already received: counted, then kept as seen
  seen.add(key);
  let union = stats.union.get(update.symbol);
  if (union === undefined) {
    union = new Set();
    stats.union.set(update.symbol, union);
  }
  union.add(key);
}

/** Open one client; resolves with null once connected or with the reason it could not connect. */
function connectOne(index) {
  return new Promise((resolve) => {
    const socket = io(config.url, {
      transports: ["websocket"],
      forceNew: true, // one WebSocket per client: never multiplex clients over a shared Manager
      reconnection: config.reconnect, // with its defaults (delays, randomisation, attempts without end)
      timeout: config.connectTimeout,
    });
    const client = { socket, symbols: symbolsFor(index), seen: new Map(), newest: new Map(), connected: false,
                     subscribed: false, positions: {}, generation: 0, generationAtT0: 0, back: null, live: null,
                     firstAge: null };
    socket.on(kind.event, (update) => onUpdate(client, update));
    socket.on("error", (error) => bump(stats.errors, (error && error.code) || "error"));
    socket.on("disconnect", (reason) => {
      if (client.connected) bump(stats.disconnects, reason);
      if (storm.t0 !== null) storm.closedAt.push(Date.now() - storm.t0);
      client.connected = false;
    });
    socket.on("connect", () => {
      client.generation += 1;
      client.connected = true;
    });
    if (config.reconnect) followReconnects(client); // after the counting above: its handlers see the new generation
    socket.once("connect", () => {
      clients.push(client);
      resolve(null);
    });
    socket.once("connect_error", (err) => {
      if (client.generation > 0) return; // a reconnection's: followReconnects sees it
      socket.close();
      resolve(refusalOf(err));
    });
  });
}

function refusalOf(err) {
  return (err && err.data && err.data.code) || (err && err.message) || "connect_error";
}

/** --reconnect: on each connection after the first, subscribe again with the positions kept (the README's
 * "Recovering after a reconnect"); retry a refusal that is only for now; note when the client was back. */
function followReconnects(client) {
  const { socket } = client;
  socket.io.on("reconnect_attempt", () => {
    if (storm.t0 !== null) storm.attempts += 1;
  });
  socket.on("connect_error", (err) => {
    if (client.generation === 0) return; // the first connect's: counted by connectOne
    if (storm.t0 !== null) {
      bump(storm.refused, refusalOf(err));
      storm.failedAt.push(Date.now() - storm.t0);
    }
    if (!socket.active && RETRIED_REFUSALS.has(err && err.data && err.data.code)) {
      setTimeout(() => {
        if (storm.t0 !== null) storm.attempts += 1;
        socket.connect();
      }, RETRY_REFUSED_MS);
    }
  });
  socket.on("connect", () => {
    if (client.generation < 2 || !client.subscribed) return; // the first connection subscribes on command
    if (storm.t0 !== null) storm.connectedAt.push(Date.now() - storm.t0);
    const request = { symbols: client.symbols, streams: kind.streams, exchange: config.exchange,
                      since: client.positions };
    socket.timeout(config.connectTimeout).emit("subscribe", request, (err, answer) => {
      if (err || !answer || !Array.isArray(answer.symbols)) return;
      if (client.generation > client.generationAtT0 && client.back === null) client.back = Date.now();
      keepPositions(client, answer);
    });
  });
}

/** Take `subscribed.positions` for the channels that are not being recovered (the recovered ones' updates follow
 * and move the position themselves), as the README's clients do. */
function keepPositions(client, answer) {
  const recovered = answer.recovered || {};
  if (storm.t0 !== null) {
    for (const flag of Object.values(recovered)) storm.recoveredChannels[flag === true] += 1;
  }
  for (const [channel, position] of Object.entries(answer.positions || {})) {
    if (!recovered[channel]) client.positions[channel] = position;
  }
}

/** Run `task(i)` for i in [0, count) with at most `config.concurrency` in flight and collect failure reasons;
 * none starts after the phase deadline, so a server that accepts nothing cannot keep the bench waiting. */
async function inLanes(count, task) {
  const failures = new Map();
  const deadline = Date.now() + config.phaseSeconds * 1000;
  let next = 0;
  async function lane() {
    while (next < count && Date.now() < deadline) {
      const i = next;
      next += 1;
      const failure = await task(i);
      if (failure !== null) bump(failures, failure);
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, config.concurrency) }, lane));
  if (next < count) failures.set(`not tried within ${config.phaseSeconds} s`, count - next);
  return failures;
}

function countOf(map) {
  let total = 0;
  for (const value of map.values()) total += value;
  return total;
}

async function connectAll() {
  const started = Date.now();
  const failures = await inLanes(config.clients, (i) => connectOne(config.first + i));
  send({ type: "connected", ok: clients.length, failed: countOf(failures), errors: Object.fromEntries(failures),
         seconds: (Date.now() - started) / 1000 });
}

/** Subscribe one client and wait for the acknowledgement (the service and the reference both send one). */
function subscribeOne(client) {
  return new Promise((resolve) => {
    if (!client.connected) {
      resolve("not connected");
      return;
    }
    // undefined streams or exchange: not sent
    const request = { symbols: client.symbols, streams: kind.streams, exchange: config.exchange };
    client.socket.timeout(config.connectTimeout).emit("subscribe", request, (err, answer) => {
      if (err) resolve("no acknowledgement");
      else if (!answer || !Array.isArray(answer.symbols) || answer.symbols.length !== client.symbols.length) {
        resolve((answer && answer.code) || "refused");
      } else if (config.exchange !== undefined && answer.exchange !== config.exchange) {
        resolve(`subscribed on ${answer.exchange}, not ${config.exchange}`);
      } else {
        client.subscribed = true;
        keepPositions(client, answer);
        resolve(null);
      }
    });
  });
}

async function subscribeAll() {
  const started = Date.now();
  const failures = await inLanes(clients.length, (i) => subscribeOne(clients[i]));
  send({ type: "subscribed", ok: clients.filter((c) => c.subscribed).length, failed: countOf(failures),
         errors: Object.fromEntries(failures), seconds: (Date.now() - started) / 1000 });
}

/** Per symbol: subscribed clients, the sum over them of distinct keys received, and the union seen. */
function symbolReport() {
  const symbols = {};
  for (const symbol of config.symbols) symbols[symbol] = { subscribers: 0, unique: 0, union: [] };
  for (const client of clients) {
    for (const symbol of client.subscribed ? client.symbols : []) symbols[symbol].subscribers += 1;
    for (const [symbol, seen] of client.seen) {
      if (symbols[symbol] !== undefined) symbols[symbol].unique += seen.size;
    }
  }
  for (const [symbol, union] of stats.union) {
    if (symbols[symbol] !== undefined) symbols[symbol].union = [...union];
  }
  return symbols;
}

function report() {
  send({
    type: "report",
    received: stats.received,
    duplicates: stats.duplicates,
    outOfOrder: stats.outOfOrder,
    outside: stats.outside,
    foreign: stats.foreign,
    latency: Object.fromEntries(stats.latency),
    symbols: symbolReport(),
    disconnects: Object.fromEntries(stats.disconnects),
    errors: Object.fromEntries(stats.errors),
    connectedNow: clients.filter((c) => c.connected).length,
  });
}

/** The restart as each subscribed client of this slice saw it: ms from t0 until it was subscribed again and until
 * its first live update (null: not yet), the age on receipt (receipt - eventTime) of its first update sent live
 * (not recovered) on its new connection, and the slice's counts. */
function stormReport() {
  const subscribed = clients.filter((c) => c.subscribed);
  const since = (at) => (at === null ? null : at - storm.t0);
  send({
    type: "storm-report",
    clients: subscribed.length,
    back: subscribed.map((c) => since(c.back)),
    live: subscribed.map((c) => since(c.live)),
    firstAge: subscribed.filter((c) => c.firstAge !== null).map((c) => c.firstAge),
    refused: Object.fromEntries(storm.refused),
    attempts: storm.attempts,
    recovered: storm.recovered,
    recoveredChannels: storm.recoveredChannels,
    missed: storm.missed,
    repeated: storm.repeated,
    epochChanged: storm.epochChanged,
    closedAt: storm.closedAt,
    failedAt: storm.failedAt,
    connectedAt: storm.connectedAt,
    connectedNow: clients.filter((c) => c.connected).length,
  });
}

function markStorm(t0) {
  storm.t0 = t0;
  for (const client of clients) {
    client.generationAtT0 = client.generation;
    client.back = null;
    client.live = null;
    client.firstAge = null;
  }
}

function exit() {
  for (const client of clients) client.socket.close();
  setTimeout(() => process.exit(0), 200).unref();
}

function onCommand(line) {
  const command = JSON.parse(line);
  if (command.cmd === "subscribe") subscribeAll();
  else if (command.cmd === "window") stats.window = { from: command.from, to: command.to };
  else if (command.cmd === "progress") send({ type: "progress", received: stats.received });
  else if (command.cmd === "report") report();
  else if (command.cmd === "storm") markStorm(command.t0);
  else if (command.cmd === "storm-progress") {
    const subscribed = clients.filter((c) => c.subscribed);
    const live = subscribed.filter((c) => c.live !== null).length;
    send({ type: "storm-progress", live, waiting: subscribed.length - live });
  } else if (command.cmd === "storm-report") stormReport();
  else if (command.cmd === "exit") exit();
  else process.stderr.write(`loadgen: unknown command ${line}\n`);
}

readline.createInterface({ input: process.stdin }).on("line", onCommand).on("close", exit);
setTimeout(() => {
  process.stderr.write(`loadgen: still running after ${config.maxSeconds} s; exiting\n`);
  process.exit(3);
}, config.maxSeconds * 1000).unref();
connectAll();
