// Opens docs/examples/browser.html in headless Chromium against a running service and prints what it shows.
//   node tests/e2e/browser_check.js SERVICE_URL SCREENSHOT_PATH
// The page loads socket.io from its CDN; with no internet here, that request is answered from node_modules.
const path = require("path");
const { chromium } = require("playwright-core");

const ROOT = path.resolve(__dirname, "..", "..");

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
    console.log(JSON.stringify({ rows, status, updates: await page.evaluate(() => window.updates), pageErrors }));
  } finally {
    await browser.close();
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
