// Opens docs/examples/browser.html in headless Chromium against a running service and prints what it shows; then
// closes the page's transport under it and reports how it subscribed again (the positions it kept, as `since`).
//   node tests/e2e/browser_check.js SERVICE_URL SCREENSHOT_PATH
// The page loads socket.io from its CDN; with no internet here, that request is answered from node_modules.
const path = require("path");
const { chromium } = require("playwright-core");

const ROOT = path.resolve(__dirname, "..", "..");

async function until(predicate, what, timeout = 20000) {
  const deadline = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function main() {
  const [serviceUrl, screenshot] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage();
    const pageErrors = [];
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    const frames = [];  // [direction, event, data] of each Socket.IO event on the page's WebSockets, in order
    page.on("websocket", (ws) => {
      const record = (direction) => ({ payload }) => {
        if (typeof payload === "string" && payload.startsWith("42")) {
          frames.push([direction, ...JSON.parse(payload.slice(2))]);
        }
      };
      ws.on("framesent", record("sent"));
      ws.on("framereceived", record("received"));
    });
    const events = (direction, event) => frames.filter((f) => f[0] === direction && f[1] === event).map((f) => f[2]);
    await page.route("https://cdn.socket.io/**", (route) =>
      route.fulfill({ path: path.join(ROOT, "node_modules", "socket.io-client", "dist", "socket.io.min.js"),
                      contentType: "application/javascript" }));
    const file = path.join(ROOT, "docs", "examples", "browser.html");
    await page.goto(`file://${file}?url=${encodeURIComponent(serviceUrl)}&symbols=BTCUSDT,ETHUSDT`);
    await page.waitForFunction(
      () => document.querySelectorAll("#prices tbody tr").length === 2 && window.updates >= 4,
      null, { timeout: 20000 });
    const rows = await page.$$eval("#prices tbody tr",
      (trs) => trs.map((tr) => Array.from(tr.children, (td) => td.textContent)));
    const status = await page.textContent("#status");
    if (screenshot) await page.screenshot({ path: screenshot });
    const updates = await page.evaluate(() => window.updates);
    // the connection lost: close the transport under the page; socket.io-client's own reconnection runs and the
    // page subscribes again (`positions` and `socket` are the page's own globals)
    const kept = await page.evaluate(() => {
      // the last update the page itself handled per symbol, read with `positions` in one step below (the frames
      // this script records arrive on their own schedule and may be ahead of or behind the page)
      window.lastHandled = {};
      socket.on("price_update", (u) => { window.lastHandled[u.symbol] = { offset: u.offset, epoch: u.epoch }; });
      const copy = JSON.parse(JSON.stringify(positions));
      socket.io.engine.close();
      return { positions: copy, updates: window.updates };
    });
    await until(() => events("received", "subscribed").length === 2, "the second subscribed");
    await page.waitForFunction((count) => window.updates >= count + 4, kept.updates, { timeout: 20000 });
    const last = await page.evaluate(() => ({ positions, handled: window.lastHandled }));
    await until(() => Object.values(last.handled).every(({ offset, epoch }) => events("received", "price_update")
      .some((u) => u.offset === offset && u.epoch === epoch)), "the frames of the updates the page handled");
    console.log(JSON.stringify({
      rows, status, updates, pageErrors, kept: kept.positions,
      subscribes: events("sent", "subscribe"),
      subscribed: events("received", "subscribed"),
      updatesReceived: events("received", "price_update"),
      positions: last.positions, lastHandled: last.handled,
    }));
  } finally {
    await browser.close();
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
