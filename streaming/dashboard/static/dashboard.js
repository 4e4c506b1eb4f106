// The dashboard at /: live prices, best bid/ask and a trades tape from the service's Socket.IO stream, and the
// service's own health from /health and /stats. Everything comes from the service itself (no CDN).
//   /?symbols=BTCUSDT,ETHUSDT   the rows to start with (else the last ones used here, else DEFAULT_SYMBOLS)
//   /?token=...                 the clients' token, when the service has authentication on
import { io } from "./vendor/socket.io.esm.min.js";
import { PriceStream } from "./stream.js";

const ROW_STREAMS = ["ticker", "book"];
const SPARK_WINDOW_MS = 5 * 60 * 1000; // the sparkline's span
const SPARK_POINTS = 600; // at most, kept per symbol
const HISTORY_PAGES = 5; // of /history fetched to draw a new row's sparkline (1,000 tickers each)
const LATENCY_WINDOW_MS = 60 * 1000;
const TAPE_ROWS = 40;
const EVENT_ROWS = 100;
const OPS_INTERVAL_MS = 5000;
const STORE_KEY = "websocket-streaming.dashboard.symbols";
const SVG = "http://www.w3.org/2000/svg";

const params = new URLSearchParams(location.search);
const token = params.get("token") || undefined;
const $ = (id) => document.getElementById(id);
const prices = new Intl.NumberFormat("en-US", { maximumFractionDigits: 8 });
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 });
const clock = (ms) => new Date(ms).toISOString().slice(11, 23);

const stream = new PriceStream(io, undefined, { token });
const rows = new Map(); // symbol -> {tr, cells, price, points, dirty}
const tape = []; // trades of the selected symbol, newest first
let selected = null;
const latencies = []; // [arrival ms, latency ms]
let reconnect = null; // what the last reconnection recovered: {at, recovered: {}, count}
window.dashboard = { stream, rows, tape, latencies }; // for the browser tests and the curious

function api(path) {
  return fetch(path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
}

// -- rows ---------------------------------------------------------------------------------------------------
function cell(tr, className = "") {
  const td = document.createElement("td");
  if (className) td.className = className;
  tr.appendChild(td);
  return td;
}

function makeRow(symbol) {
  const tr = document.createElement("tr");
  tr.dataset.symbol = symbol;
  const first = cell(tr);
  const pick = document.createElement("button");
  pick.type = "button";
  pick.className = "symbol";
  pick.textContent = symbol;
  pick.setAttribute("aria-pressed", "false");
  pick.setAttribute("aria-label", `${symbol}: show its trades`);
  pick.addEventListener("click", () => select(symbol));
  first.appendChild(pick);
  const cells = {
    price: cell(tr, "price"), change: cell(tr), high: cell(tr), low: cell(tr), volume: cell(tr),
    spark: cell(tr), bid: cell(tr, "bid"), ask: cell(tr, "ask"), state: cell(tr, "state"),
  };
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 24");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${symbol}: no prices yet`);
  svg.appendChild(document.createElementNS(SVG, "polyline"));
  cells.spark.appendChild(svg);
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "remove";
  remove.textContent = "×";
  remove.setAttribute("aria-label", `Remove ${symbol}`);
  remove.addEventListener("click", () => removeSymbol(symbol));
  cell(tr).appendChild(remove);
  cells.state.textContent = "waiting";
  cells.state.dataset.state = "connecting";
  document.querySelector("#prices tbody").appendChild(tr);
  return { tr, cells, price: null, points: [], ticker: null, book: null, dirty: false };
}

function addSymbol(raw) {
  const symbol = raw.trim().toUpperCase();
  $("add-error").textContent = "";
  if (!symbol) return;
  if (rows.has(symbol)) {
    $("add-error").textContent = `${symbol} is on the table already`;
    return;
  }
  rows.set(symbol, makeRow(symbol));
  stream.want([symbol], ROW_STREAMS);
  if (!selected) select(symbol);
  remember();
}

function removeSymbol(symbol, keepError = false) {
  const row = rows.get(symbol);
  if (!row) return;
  row.tr.remove();
  rows.delete(symbol);
  stream.drop([symbol]);
  if (!keepError) $("add-error").textContent = "";
  if (selected === symbol) select(rows.keys().next().value || null);
  remember();
}

function remember() {
  try { localStorage.setItem(STORE_KEY, JSON.stringify([...rows.keys()])); } catch { /* private mode */ }
}

function select(symbol) {
  if (selected === symbol) return;
  if (selected) stream.drop([selected], ["trade"]);
  selected = symbol;
  tape.length = 0;
  for (const [name, row] of rows) {
    row.tr.setAttribute("aria-selected", String(name === symbol));
    row.tr.querySelector(".symbol").setAttribute("aria-pressed", String(name === symbol));
  }
  $("tape-symbol").textContent = symbol || "";
  if (symbol) stream.want([symbol], ["trade"]);
  renderTape();
}

// once the service accepted a symbol: its last minutes of tickers, and the last trades of the selected one
stream.on("subscribed", (answer) => {
  for (const symbol of answer.symbols) {
    const row = rows.get(symbol);
    if (row && answer.streams.includes("ticker") && !row.historyLoaded) {
      row.historyLoaded = true;
      loadSparkline(symbol);
    }
    if (symbol === selected && answer.streams.includes("trade")) loadRecentTrades(symbol);
  }
});

// -- updates ------------------------------------------------------------------------------------------------
stream.on("update", ({ stream: kind, data, first }) => {
  if (!first && !data.recovered && Number.isFinite(data.eventTime)) {
    latencies.push([Date.now(), Date.now() - data.eventTime]);
  }
  if (kind === "trade") {
    if (data.symbol === selected) addTrades([data]);
    return;
  }
  const row = rows.get(data.symbol);
  if (!row) return;
  if (kind === "ticker") {
    row.ticker = data;
    addPoint(row, data.eventTime, data.price);
  } else {
    row.book = data;
  }
  if (row.cells.state.dataset.state === "connecting") setRowState(row, "live");
  row.dirty = true;
  schedule();
});

function addPoint(row, time, price) {
  const points = row.points;
  if (points.length && time <= points[points.length - 1][0]) return;
  points.push([time, price]);
  const oldest = time - SPARK_WINDOW_MS;
  while (points.length > SPARK_POINTS || (points.length && points[0][0] < oldest)) points.shift();
}

let frame = 0;
function schedule() {
  if (!frame) frame = requestAnimationFrame(render);
}

function render() {
  frame = 0;
  for (const row of rows.values()) {
    if (!row.dirty) continue;
    row.dirty = false;
    const { cells, ticker, book } = row;
    if (ticker) {
      if (row.price !== null && ticker.price !== row.price) flash(cells.price, ticker.price > row.price);
      row.price = ticker.price;
      const arrow = cells.price.querySelector(".arrow") || document.createElement("span");
      arrow.className = `arrow ${cells.price.dataset.direction || ""}`;
      arrow.setAttribute("aria-hidden", "true");
      arrow.textContent = { up: "▲", down: "▼" }[cells.price.dataset.direction] || "";
      cells.price.textContent = prices.format(ticker.price);
      cells.price.prepend(arrow);
      cells.price.dataset.price = String(ticker.price);
      const pct = ticker.changePercent;
      cells.change.textContent = `${pct > 0 ? "+" : ""}${pct.toFixed(2)} %`;
      cells.change.className = pct > 0 ? "up" : pct < 0 ? "down" : "";
      cells.high.textContent = prices.format(ticker.high);
      cells.low.textContent = prices.format(ticker.low);
      cells.volume.textContent = compact.format(ticker.volume);
      drawSparkline(row);
    }
    if (book) {
      cells.bid.textContent = prices.format(book.bid);
      cells.ask.textContent = prices.format(book.ask);
      cells.bid.title = `${book.bidQty} at ${book.bid}`;
      cells.ask.title = `${book.askQty} at ${book.ask}`;
    }
  }
}

function flash(td, up) {
  td.dataset.direction = up ? "up" : "down";
  td.classList.remove("flash-up", "flash-down");
  void td.offsetWidth; // restart the animation (none at all with prefers-reduced-motion)
  td.classList.add(up ? "flash-up" : "flash-down");
}

function drawSparkline(row) {
  const points = row.points;
  const svg = row.cells.spark.firstChild;
  if (points.length < 2) return;
  const t0 = points[0][0];
  const span = Math.max(1, points[points.length - 1][0] - t0);
  let low = Infinity;
  let high = -Infinity;
  for (const [, price] of points) { low = Math.min(low, price); high = Math.max(high, price); }
  const range = high - low || 1;
  svg.firstChild.setAttribute("points", points.map(([t, price]) =>
    `${((t - t0) / span * 120).toFixed(1)},${(22 - (price - low) / range * 20).toFixed(1)}`).join(" "));
  const minutes = Math.max(1, Math.round(span / 60000));
  svg.setAttribute("aria-label", `${row.tr.dataset.symbol} over the last ${minutes} min: from ` +
    `${prices.format(points[0][1])} to ${prices.format(points[points.length - 1][1])}`);
}

// -- trades tape --------------------------------------------------------------------------------------------
function addTrades(trades) {
  const seen = new Set(tape.map((trade) => trade.id));
  for (const trade of trades) if (!seen.has(trade.id)) tape.push(trade);
  tape.sort((a, b) => b.id - a.id);
  tape.length = Math.min(tape.length, TAPE_ROWS);
  renderTape();
}

function renderTape() {
  const body = document.querySelector("#tape tbody");
  body.replaceChildren(...tape.map((trade) => {
    const tr = document.createElement("tr");
    tr.dataset.id = String(trade.id);
    cell(tr).textContent = clock(trade.tradeTime);
    const side = cell(tr, trade.side === "buy" ? "up" : "down");
    side.textContent = trade.side;
    cell(tr).textContent = prices.format(trade.price);
    cell(tr).textContent = String(trade.quantity);
    return tr;
  }));
}

async function loadRecentTrades(symbol) {
  try {
    const answer = await (await api(`/trades/${symbol}?limit=${TAPE_ROWS}`)).json();
    if (answer.success && symbol === selected) addTrades(answer.data);
  } catch { /* the live trades fill the tape anyway */ }
}

async function loadSparkline(symbol) {
  // the row's last minutes from the recorded history, in front of the live tickers
  const points = [];
  let after = "";
  try {
    for (let page = 0; page < HISTORY_PAGES; page += 1) {
      const from = Date.now() - SPARK_WINDOW_MS;
      const answer = await (await api(`/history/${symbol}?stream=ticker&from=${from}&limit=1000${after}`)).json();
      if (!answer.success) return;
      for (const item of answer.data.items) points.push([item.eventTime, item.price]);
      if (!answer.data.next) break;
      after = `&after=${answer.data.next}`;
    }
  } catch { return; }
  const row = rows.get(symbol);
  if (!row) return;
  const live = row.points;
  row.points = points.filter(([t]) => !live.length || t < live[0][0]);
  for (const [t, price] of live) addPoint(row, t, price);
  row.points = row.points.slice(-SPARK_POINTS);
  drawSparkline(row);
}

// -- connection, recovery, stream status --------------------------------------------------------------------
const STATE_TEXT = {
  connecting: "connecting…", live: "live", reconnecting: "reconnecting…", offline: "offline",
  unauthorized: "not authorised",
};
stream.on("state", ({ state, reason }) => {
  const shown = $("connection");
  shown.dataset.state = state;
  shown.textContent = STATE_TEXT[state] + (reason && state !== "live" ? ` (${reason})` : "");
  if (state === "unauthorized") {
    $("add-error").textContent = `${reason}: open this page as /?token=YOUR_TOKEN`;
  }
  logEvent(`connection ${state}${reason ? ` (${reason})` : ""}`);
  if (state === "live") setTimeout(refreshOps, 500); // the strip counts this page once it is subscribed
  if (state === "live" && stream.connections > 1) {
    reconnect = { at: Date.now(), recovered: {}, count: 0 };
    showRecovery();
  }
});

stream.on("recovery", ({ recovered, reconnect: again }) => {
  if (!again || !reconnect) return;
  Object.assign(reconnect.recovered, recovered);
  showRecovery();
});

stream.on("update", ({ data }) => {
  if (data.recovered && reconnect) {
    reconnect.count += 1;
    showRecovery();
  }
});

function showRecovery() {
  const shown = $("recovery");
  const channels = Object.entries(reconnect.recovered);
  if (!channels.length) {
    shown.textContent = `reconnected at ${clock(reconnect.at)}`;
    shown.dataset.outcome = "";
    return;
  }
  const gaps = channels.filter(([, ok]) => !ok).map(([channel]) => channel);
  if (gaps.length) {
    shown.dataset.outcome = "gap";
    shown.textContent = `reconnected at ${clock(reconnect.at)}: gap in ${gaps.join(", ")} (what was missed is ` +
      "gone; showing the latest)";
  } else {
    shown.dataset.outcome = "recovered";
    shown.textContent = `reconnected at ${clock(reconnect.at)}: recovered ${channels.length} channels, ` +
      `${reconnect.count} missed updates`;
  }
}

function setRowState(row, state) {
  row.cells.state.dataset.state = state;
  row.cells.state.textContent = state;
}

stream.on("status", (status) => {
  const row = rows.get(status.symbol);
  if (row) setRowState(row, status.state);
  logEvent(`${status.symbol} ${status.state}`, "status", status.state);
});

stream.on("error", (error) => {
  logEvent(`error ${error.code}: ${error.message}`);
  if (error.event === "subscribe" && Array.isArray(error.symbols)) {
    for (const symbol of error.symbols) removeSymbol(String(symbol).toUpperCase(), true);
    $("add-error").textContent = error.message;
  } else if (error.event === "subscribe") {
    $("add-error").textContent = error.message;
  }
});

stream.on("shutdown", (notice) => logEvent(`service restarting: ${notice.message}`));
stream.on("anomaly", (a) => logEvent(`${a.channel}: ${a.kind} (expected offset ${a.expected}, got ${a.received})`));

function logEvent(text, kind = "connection", state = "") {
  const item = document.createElement("li");
  item.dataset.kind = kind;
  if (state) item.dataset.state = state;
  const time = document.createElement("time");
  time.textContent = `${clock(Date.now())} `;
  const what = document.createElement("span");
  what.textContent = text;
  item.append(time, what);
  const list = $("events");
  list.prepend(item);
  while (list.children.length > EVENT_ROWS) list.lastChild.remove();
}

// -- latency ------------------------------------------------------------------------------------------------
function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

setInterval(() => {
  const oldest = Date.now() - LATENCY_WINDOW_MS;
  let drop = 0;
  while (drop < latencies.length && latencies[drop][0] < oldest) drop += 1;
  latencies.splice(0, drop);
  if (!latencies.length) return;
  const sorted = latencies.map(([, latency]) => latency).sort((a, b) => a - b);
  $("latency").textContent = `p50 ${percentile(sorted, 0.5)} ms · p99 ${percentile(sorted, 0.99)} ms ` +
    `(${sorted.length} updates in the last minute)`;
}, 1000);

// -- the service: /health and /stats ------------------------------------------------------------------------
async function refreshOps() {
  try {
    const health = await (await api("/health")).json();
    const status = $("ops-status");
    status.textContent = health.status;
    status.dataset.status = health.status;
    $("ops-reasons").replaceChildren(...(health.reasons || []).map((reason) => {
      const item = document.createElement("li");
      item.textContent = reason;
      return item;
    }));
    const connections = health.upstream.connections || [];
    const live = connections.filter((c) => c.state === "live").length;
    $("ops-upstream").textContent = `${live} of ${connections.length} connections live (${health.upstream.source})`;
    $("ops-history").textContent = health.dependencies.history.store;
    $("ops-uptime").textContent = health.uptime;
    $("ops-version").textContent = `${health.version} (${health.build.async_mode})`;
    $("ops-clients").textContent = String(health.metrics.connected_clients);
    $("ops-streams").textContent = `${health.metrics.active_streams} streams of ${health.metrics.active_symbols.length} symbols`;
  } catch (err) {
    $("ops-status").textContent = `unreachable (${err.message})`;
    $("ops-status").dataset.status = "unhealthy";
  }
  try {
    const stats = await api("/stats");
    if (stats.ok) {
      const data = (await stats.json()).data;
      $("ops-clients").textContent = `${data.connected_clients} (${data.total_subscriptions} subscriptions)`;
    }
  } catch { /* /health's count stays */ }
}

// -- start --------------------------------------------------------------------------------------------------
async function start() {
  $("add-form").addEventListener("submit", (event) => {
    event.preventDefault();
    addSymbol($("add-symbol").value);
    $("add-symbol").value = "";
  });
  let symbols = (params.get("symbols") || "").split(",").filter(Boolean);
  try {
    const answer = await (await api("/symbols")).json();
    const list = $("symbol-list");
    list.replaceChildren(...(answer.data.available_symbols || []).map((symbol) => {
      const option = document.createElement("option");
      option.value = symbol;
      return option;
    }));
    if (!symbols.length) {
      try { symbols = JSON.parse(localStorage.getItem(STORE_KEY) || "[]"); } catch { symbols = []; }
    }
    if (!symbols.length) symbols = answer.data.default_symbols;
  } catch { /* rows from ?symbols= only */ }
  symbols.forEach(addSymbol);
  refreshOps();
  setInterval(refreshOps, OPS_INTERVAL_MS);
}

start();
