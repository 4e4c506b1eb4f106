// Headless Chromium (Debian's, through playwright-core) driven by a test over stdin/stdout: one JSON command per
// line in, one JSON answer per line out ({ok: true, value} or {ok: false, error}). tests/e2e/browser.py is the
// Python side.
//   node tests/e2e/browser_driver.js '{"reducedMotion": "reduce", "viewport": {"width": 1280, "height": 900}}'
// Commands: {do: "goto", url} | {do: "wait", expr, timeout} | {do: "eval", expr} | {do: "fill", selector, value}
// | {do: "press", selector, key} | {do: "click", selector} | {do: "key", key} | {do: "screenshot", path}
// | {do: "axe"} | {do: "log"}: the page's errors, console errors and WebSocket frames so far.
// An `expr` is a JavaScript expression evaluated in the page (for wait: until it is truthy).
const fs = require("fs");
const path = require("path");
const readline = require("readline");
const { chromium } = require("playwright-core");

const ROOT = path.resolve(__dirname, "..", "..");

async function main() {
  const options = JSON.parse(process.argv[2] || "{}");
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({
    viewport: options.viewport || { width: 1280, height: 900 },
    reducedMotion: options.reducedMotion || "no-preference",
  });
  const page = await context.newPage();
  const log = { pageErrors: [], consoleErrors: [], requests: [], sent: [], received: [] };
  page.on("pageerror", (err) => log.pageErrors.push(String(err)));
  page.on("console", (message) => { if (message.type() === "error") log.consoleErrors.push(message.text()); });
  page.on("request", (request) => log.requests.push(request.url()));
  page.on("websocket", (ws) => {
    const record = (into) => ({ payload }) => {
      if (typeof payload === "string" && payload.startsWith("42")) into.push(JSON.parse(payload.slice(2)));
    };
    ws.on("framesent", record(log.sent));
    ws.on("framereceived", record(log.received));
  });
  const commands = {
    goto: ({ url }) => page.goto(url).then((response) => response && response.status()),
    wait: async ({ expr, timeout = 10000 }) => {
      // polled from here: waitForFunction evaluates strings with eval(), which the page's CSP forbids
      const deadline = Date.now() + timeout;
      for (;;) {
        const value = await page.evaluate(expr);
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${expr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    eval: ({ expr }) => page.evaluate(expr),
    fill: ({ selector, value }) => page.fill(selector, value),
    press: ({ selector, key }) => page.press(selector, key),
    click: ({ selector }) => page.click(selector),
    key: ({ key }) => page.keyboard.press(key),
    screenshot: ({ path: file }) => page.screenshot({ path: file, fullPage: true }).then(() => file),
    axe: async () => {
      // evaluated through the DevTools protocol, which the page's Content-Security-Policy does not restrict
      await page.evaluate(fs.readFileSync(path.join(ROOT, "node_modules", "axe-core", "axe.min.js"), "utf8"));
      return page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }).then((result) =>
        result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                                        nodes: v.nodes.map((n) => n.html).slice(0, 5) }))));
    },
    log: () => log,
  };
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const command = JSON.parse(line);
    let answer;
    try {
      answer = { ok: true, value: await commands[command.do](command) };
    } catch (err) {
      answer = { ok: false, error: String(err && err.stack || err) };
    }
    process.stdout.write(`${JSON.stringify(answer === undefined ? null : answer)}\n`);
  }
  await browser.close();
}

main().catch((err) => { console.error(err); process.exit(1); });
