// Node.js client for websocket-streaming (socket.io-client v4).
//   node docs/examples/node-client.js [--url http://localhost:5021] [--symbols BTCUSDT,ETHUSDT]
//                                     [--streams ticker,trade,book] [--count N]
// Prints one JSON line per event; with --count it exits after N updates (price_update, trade, book_ticker).
const { io } = require("socket.io-client");

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1] : fallback;
}

const url = option("url", process.env.SERVICE_URL || "http://localhost:5021");
const symbols = option("symbols", "BTCUSDT,ETHUSDT").split(",");
const streams = option("streams", "ticker").split(",");
const count = Number(option("count", "0"));
let received = 0;

const socket = io(url, { transports: ["websocket"] });
const print = (event, data) => console.log(JSON.stringify({ event, data }));

socket.on("connected", (data) => {
  print("connected", data);
  socket.emit("subscribe", { symbols, streams });
});
socket.on("subscribed", (data) => print("subscribed", data));
socket.on("error", (data) => print("error", data));
for (const event of ["price_update", "trade", "book_ticker"]) {
  socket.on(event, (update) => {
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
