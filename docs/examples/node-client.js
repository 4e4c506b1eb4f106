// Node.js client for websocket-streaming (socket.io-client v4).
//   node docs/examples/node-client.js [--url http://localhost:5021] [--symbols BTCUSDT,ETHUSDT]
//                                     [--streams ticker,trade,book] [--count N] [--positions FILE]
// Prints one JSON line per event; with --count it exits after N updates (price_update, trade, book_ticker).
// After a lost connection it reconnects by itself and gets what it missed meanwhile (README, "Recovering after
// a reconnect"). With --positions it keeps its positions in FILE, so that a run started again later gets what
// was missed since the last one (as long as the service still holds it: RECOVERY_GRACE, history retention).
const fs = require("fs");
const { io } = require("socket.io-client");

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1] : fallback;
}

const url = option("url", process.env.SERVICE_URL || "http://localhost:5021");
const symbols = option("symbols", "BTCUSDT,ETHUSDT").split(",");
const streams = option("streams", "ticker").split(",");
const count = Number(option("count", "0"));
const positionsFile = option("positions", "");
let received = 0;

// The last position seen on each channel: {"trade:BTCUSDT": {offset, epoch}, ...}, sent back as `since` when
// subscribing again after a reconnect.
const positions = positionsFile && fs.existsSync(positionsFile)
  ? JSON.parse(fs.readFileSync(positionsFile, "utf8")) : {};
function savePositions() {
  if (!positionsFile) return;
  fs.writeFileSync(`${positionsFile}.tmp`, JSON.stringify(positions));
  fs.renameSync(`${positionsFile}.tmp`, positionsFile); // whole or not at all, even if stopped halfway
}
if (positionsFile) {
  setInterval(savePositions, 1000).unref();
  process.on("exit", savePositions);
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
}
const STREAM_OF = { price_update: "ticker", trade: "trade", book_ticker: "book" };

const socket = io(url, { transports: ["websocket"] });
const print = (event, data) => console.log(JSON.stringify({ event, data }));

// `connected` comes on every connection: the first one and each automatic reconnection.
socket.on("connected", (data) => {
  print("connected", data);
  socket.emit("subscribe", { symbols, streams, since: positions });
});
socket.on("subscribed", (answer) => {
  print("subscribed", answer);
  const recovered = answer.recovered || {};
  for (const [channel, position] of Object.entries(answer.positions || {})) {
    if (recovered[channel] === false) {
      // the epoch changed or too much was missed: start over from here (tickers and book tickers come with
      // their latest; trades missed meanwhile are in GET /trades/<SYMBOL>)
      console.error(`${channel}: could not recover what was missed; starting over`);
    }
    // recovered: true: the missed updates follow and move the position themselves (should the connection drop
    // again halfway, it must be the last one received, not this one)
    if (!recovered[channel]) positions[channel] = position;
  }
});
socket.on("error", (data) => print("error", data));
for (const [event, stream] of Object.entries(STREAM_OF)) {
  socket.on(event, (update) => {
    // the last one received, always (a new epoch replaces the old position); absent if the service keeps no history
    if (update.epoch !== undefined) {
      positions[`${stream}:${update.symbol}`] = { offset: update.offset, epoch: update.epoch };
    }
    print(event, update);
    received += 1;
    if (count && received === count) {
      socket.emit("unsubscribe", { symbols });
    }
  });
}
socket.on("unsubscribed", (data) => {
  print("unsubscribed", data);
  socket.close();
});
socket.on("disconnect", (reason) => {
  if (socket.active) console.error(`connection lost (${reason}); reconnecting`);
});
socket.on("connect_error", (err) => {
  const code = err.data && err.data.code;
  if (socket.active) {
    // the connection itself failed (the service is restarting, the network is down): socket.io-client retries
    console.error(`cannot reach ${url} (${err.message}); retrying`);
  } else if (code === "SERVER_SHUTTING_DOWN" || code === "TOO_MANY_CONNECTIONS") {
    // refused by the service for now (socket.io-client does not retry a refusal by itself): try again shortly
    console.error(`refused by ${url} (${code}: ${err.message}); retrying in 2 s`);
    setTimeout(() => socket.connect(), 2000);
  } else {
    console.error(`refused by ${url}: ${err.message}`);
    process.exit(1);
  }
});
