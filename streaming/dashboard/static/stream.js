// PriceStream: a client of websocket-streaming with no framework, for browsers and Node.js (an ES module with no
// imports: pass it socket.io-client's `io`). The dashboard at / runs on it, and so does the React hook of
// docs/examples/react/. It keeps what a client must keep to miss nothing:
//   - the channels wanted ({symbol: streams}), subscribed again on every connection;
//   - the last {offset, epoch} of each channel, sent back as `since`, so that after a reconnect the service sends
//     what was missed first (recovered: true) or says it cannot (recovered: false, and the latest instead);
//   - the connection's state: connecting, live, reconnecting, offline or unauthorized.
// Events (on(type, listener) returns a function that removes the listener):
//   state     {state, reason}
//   update    {event, stream, channel, data, first}: a price_update, trade or book_ticker; `first`: the first
//             one of its channel since it was subscribed (a state channel's snapshot, or a recovered update)
//   subscribed the service's answer;  recovery {recovered: {"ticker:BTCUSDT": true | false}, reconnect}
//   status    a stream_status;  error  an error event {code, message, event, symbols?};  shutdown  server_shutdown
//   anomaly   {channel, kind: "duplicate" | "gap", expected, received}: an update out of sequence (dropped when it
//             is one already received); the service never sends one, and this is where it would show

export const STREAM_OF = Object.freeze({ price_update: "ticker", trade: "trade", book_ticker: "book" });
export const STREAMS = Object.freeze(["ticker", "trade", "book"]);
// Refusals that are only for now: socket.io-client retries failed connections but not refused ones.
const RETRY_LATER = new Set(["SERVER_SHUTTING_DOWN", "TOO_MANY_CONNECTIONS"]);
// Errors that name symbols the service did not subscribe: they are no longer wanted.
const NOT_SUBSCRIBED = new Set(["UNKNOWN_SYMBOL", "INVALID_SYMBOL", "TOO_MANY_SYMBOLS"]);

export const channelKey = (stream, symbol) => `${stream}:${symbol}`;

export class PriceStream {
  /**
   * @param {Function} io socket.io-client's io()
   * @param {string | undefined} url the service (undefined: the page's own origin)
   * @param {{token?: string, retryDelay?: number, socketOptions?: object}} options
   */
  constructor(io, url, { token, retryDelay = 2000, socketOptions = {} } = {}) {
    this.state = "connecting";
    this.reason = "";
    this.positions = {};
    this.connections = 0;
    this._wanted = new Map(); // symbol -> Set of streams
    this._listeners = new Map();
    this._fresh = new Set(); // channels subscribed whose first update has not come yet
    this._retryDelay = retryDelay;
    this._retry = null;
    this._closed = false;
    // a connection of its own (forceNew): two PriceStreams never share, and so never unsubscribe each other
    const options = { transports: ["websocket"], forceNew: true, ...socketOptions };
    if (token) options.auth = { token };
    this.socket = url === undefined ? io(options) : io(url, options);
    this._bind();
  }

  on(type, listener) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(listener);
    return () => this._listeners.get(type).delete(listener);
  }

  /** {symbol: [streams]} of what is wanted now. */
  wanted() {
    const out = {};
    for (const [symbol, streams] of this._wanted) out[symbol] = STREAMS.filter((s) => streams.has(s));
    return out;
  }

  /** Subscribe these symbols' streams (now if connected, else on connection); what is held already is left. */
  want(symbols, streams = ["ticker"]) {
    const added = new Map();
    for (const raw of symbols) {
      const symbol = String(raw).trim().toUpperCase();
      if (!symbol) continue;
      const held = this._wanted.get(symbol) || new Set();
      const missing = streams.filter((stream) => !held.has(stream));
      if (!missing.length) continue;
      missing.forEach((stream) => held.add(stream));
      this._wanted.set(symbol, held);
      added.set(symbol, new Set(missing));
    }
    if (added.size && this.state === "live") this._subscribe(added);
    return [...added.keys()];
  }

  /** Unsubscribe these symbols' streams (all of them without `streams`) and forget their positions. */
  drop(symbols, streams = STREAMS) {
    const removed = [];
    for (const raw of symbols) {
      const symbol = String(raw).trim().toUpperCase();
      const held = this._wanted.get(symbol);
      if (!held) continue;
      const gone = streams.filter((stream) => held.has(stream));
      if (!gone.length) continue;
      for (const stream of gone) {
        held.delete(stream);
        delete this.positions[channelKey(stream, symbol)];
        this._fresh.delete(channelKey(stream, symbol));
      }
      if (!held.size) this._wanted.delete(symbol);
      removed.push([symbol, gone]);
    }
    if (this.state === "live") {
      for (const [symbols, streamList] of groupByStreams(new Map(removed.map(([s, g]) => [s, new Set(g)])))) {
        this.socket.emit("unsubscribe", { symbols, streams: streamList });
      }
    }
    return removed.map(([symbol]) => symbol);
  }

  close() {
    this._closed = true;
    clearTimeout(this._retry);
    this.socket.close();
    this._setState("offline", "closed");
  }

  _emit(type, detail) {
    for (const listener of this._listeners.get(type) || []) listener(detail);
  }

  _setState(state, reason = "") {
    if (state === this.state && reason === this.reason) return;
    this.state = state;
    this.reason = reason;
    this._emit("state", { state, reason });
  }

  /** Whether this stream of this symbol is wanted now. */
  holds(symbol, stream) {
    const held = this._wanted.get(symbol);
    return held !== undefined && held.has(stream);
  }

  _subscribe(channels) {
    for (const [symbols, streams] of groupByStreams(channels)) {
      const since = {};
      for (const symbol of symbols) {
        for (const stream of streams) {
          const key = channelKey(stream, symbol);
          if (this.positions[key]) since[key] = this.positions[key];
        }
      }
      this.socket.emit("subscribe", { symbols, streams, since });
    }
  }

  _bind() {
    const socket = this.socket;
    // `connected` comes on every connection, the first one and each automatic reconnection: subscribe again
    socket.on("connected", () => {
      this.connections += 1;
      this._setState("live");
      this._subscribe(this._wanted);
    });
    socket.on("subscribed", (answer) => {
      const recovered = answer.recovered || {};
      for (const [channel, position] of Object.entries(answer.positions || {})) {
        this._fresh.add(channel);
        // recovered: the missed updates follow and move the position themselves (should the connection drop
        // halfway, it must be the last one received); otherwise start from here: a new epoch replaces the old
        if (!recovered[channel]) this.positions[channel] = position;
      }
      this._emit("subscribed", answer);
      if (Object.keys(recovered).length) this._emit("recovery", { recovered, reconnect: this.connections > 1 });
    });
    for (const [event, stream] of Object.entries(STREAM_OF)) {
      socket.on(event, (data) => this._update(event, stream, data));
    }
    socket.on("stream_status", (status) => this._emit("status", status));
    socket.on("error", (error) => {
      if (NOT_SUBSCRIBED.has(error.code) && Array.isArray(error.symbols) && error.event === "subscribe") {
        for (const symbol of error.symbols) this._wanted.delete(String(symbol).toUpperCase());
      }
      this._emit("error", error);
    });
    socket.on("server_shutdown", (notice) => this._emit("shutdown", notice));
    socket.on("disconnect", (reason) => {
      this._setState(socket.active && !this._closed ? "reconnecting" : "offline", reason);
    });
    socket.on("connect_error", (err) => {
      if (this._closed) return;
      const code = err.data && err.data.code;
      if (socket.active) {
        this._setState(this.connections ? "reconnecting" : "connecting", err.message);
      } else if (RETRY_LATER.has(code)) {
        this._setState("reconnecting", `${code}: ${err.message}`);
        clearTimeout(this._retry);
        this._retry = setTimeout(() => { if (!this._closed) socket.connect(); }, this._retryDelay);
      } else {
        this._setState(code === "UNAUTHORIZED" ? "unauthorized" : "offline", err.message);
      }
    });
  }

  _update(event, stream, data) {
    if (!data || typeof data.symbol !== "string" || !this.holds(data.symbol, stream)) return; // no longer wanted
    const channel = channelKey(stream, data.symbol);
    const first = this._fresh.delete(channel);
    if (data.epoch !== undefined) {
      const last = this.positions[channel];
      if (last && last.epoch === data.epoch) {
        // a state channel's snapshot carries the position the answer gave: not a duplicate
        const snapshot = first && !data.recovered && data.offset === last.offset;
        if (data.offset <= last.offset && !snapshot) {
          this._emit("anomaly", { channel, kind: "duplicate", expected: last.offset + 1, received: data.offset });
          return;
        }
        if (data.offset > last.offset + 1) {
          this._emit("anomaly", { channel, kind: "gap", expected: last.offset + 1, received: data.offset });
        }
      }
      this.positions[channel] = { offset: data.offset, epoch: data.epoch };
    }
    this._emit("update", { event, stream, channel, data, first });
  }
}

/** [[symbols, streams]] with one entry per distinct set of streams, from Map(symbol -> Set of streams). */
function groupByStreams(channels) {
  const groups = new Map();
  for (const [symbol, streams] of channels) {
    const list = STREAMS.filter((stream) => streams.has(stream));
    if (!list.length) continue;
    const key = list.join(",");
    if (!groups.has(key)) groups.set(key, [[], list]);
    groups.get(key)[0].push(symbol);
  }
  return [...groups.values()];
}
