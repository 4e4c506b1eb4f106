// A socket.io-client for the tests that pins its transports: connects, subscribes to one symbol, prints one JSON
// line per event with the transport in use, prints {"event":"ready"} after COUNT price_updates and then stays
// connected until its stdin closes (so that the test decides when it leaves). Exits 1 on a refusal or a lost
// connection, which a test through a proxy must not see.
//   node tests/e2e/transport_client.js URL TRANSPORTS SYMBOL COUNT     (TRANSPORTS: e.g. polling or websocket)
const { io } = require("socket.io-client");

const [url, transports, symbol, count] = process.argv.slice(2);
const socket = io(url, { transports: transports.split(","), reconnection: false });
const transport = () => socket.io.engine?.transport?.name;
const print = (event, data) => console.log(JSON.stringify({ event, transport: transport(), data }));
let received = 0;

socket.on("connect", () => print("connect", { id: socket.id }));
socket.on("connected", () => socket.emit("subscribe", { symbols: [symbol] }));
socket.on("subscribed", (answer) => print("subscribed", answer));
socket.on("price_update", (update) => {
  print("price_update", update);
  received += 1;
  if (received === Number(count)) print("ready", null);
});
socket.on("connect_error", (err) => {
  print("connect_error", String(err));
  process.exit(1);
});
socket.on("disconnect", (reason) => {
  if (reason === "io client disconnect") return;
  print("disconnect", reason);
  process.exit(1);
});
process.stdin.on("end", () => {
  socket.close();
  process.exit(0);
});
process.stdin.resume();
