// A socket.io server for tests/integration/test_loadgen.py: acknowledges each subscribe as the service does, then
// emits to that client the price_updates given on the command line, in that order, and nothing else.
//
//   node tests/integration/scripted_relay.js PORT '[{"symbol":"BTCUSDT","eventTime":1000}, ...]'
//
// Prints "listening" once it accepts connections; runs until SIGTERM.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const updates = JSON.parse(process.argv[3]);
const server = http.createServer();
const io = new Server(server);
io.on("connection", (socket) => {
  socket.on("subscribe", (data, ack) => {
    ack({ symbols: data.symbols });
    for (const update of updates) socket.emit("price_update", update);
  });
});
server.listen(port, "127.0.0.1", () => process.stdout.write("listening\n"));
