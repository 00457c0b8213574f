#!/usr/bin/env node
// Drives the scanner in Debian's Chromium, headless, with a fake camera fed
// a Y4M video (e2e/qr-video.mjs makes one): opens URL, waits for the verdict
// (#verdict[data-outcome]), writes a screenshot, and prints one JSON line
// {outcome, online, outcomes, timings}. With --runs N it scans N times,
// pressing "scan next" between verdicts, for the benchmark's timings
// (window.__tesseraTimings: first camera frame of a scan to verdict painted).
//
//   node e2e/scan.mjs --url URL --video FILE.y4m --screenshot OUT.png
//        [--pair CODE] [--expect OUTCOME] [--online asked|not-asked]
//        [--runs N] [--lang en|zh] [--chromium PATH] [--timeout-ms MS]
//
// Exit status: 0 when every verdict matched --expect and --online, 1 when
// one did not (or none came), 2 for a usage error.
import { chromium } from "playwright-core";

function parse(argv) {
  const opts = { runs: 1, chromium: process.env.TESSERA_CHROMIUM || "/usr/bin/chromium", timeoutMs: 30000 };
  const names = { "--url": "url", "--video": "video", "--screenshot": "screenshot", "--pair": "pair", "--expect": "expect", "--online": "online", "--runs": "runs", "--lang": "lang", "--chromium": "chromium", "--timeout-ms": "timeoutMs" };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || argv[i + 1] === undefined) usage(`unknown or incomplete option ${argv[i]}`);
    opts[key] = argv[i + 1];
  }
  opts.runs = Number(opts.runs);
  opts.timeoutMs = Number(opts.timeoutMs);
  if (!opts.url || !opts.video || !opts.screenshot) usage("--url, --video and --screenshot are required");
  if (!Number.isInteger(opts.runs) || opts.runs < 1) usage("--runs must be a positive integer");
  if (opts.online && !["asked", "not-asked"].includes(opts.online)) usage("--online is asked or not-asked");
  if (opts.lang && !["en", "zh"].includes(opts.lang)) usage("--lang is en or zh");
  return opts;
}

function usage(message) {
  console.error(`scan.mjs: ${message}`);
  process.exit(2);
}

const opts = parse(process.argv.slice(2));
const browser = await chromium.launch({
  executablePath: opts.chromium,
  headless: true,
  args: [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-video-capture=${opts.video}`,
    "--ignore-certificate-errors",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
let status = 1;
const result = { outcome: null, online: null, outcomes: [], timings: [] };
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 480, height: 800 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const url = opts.pair ? `${opts.url.replace(/#.*$/, "")}#pair=${encodeURIComponent(opts.pair)}` : opts.url;
  await page.goto(url);
  if (opts.lang) await page.selectOption("#lang", opts.lang);
  let matched = true;
  for (let run = 0; run < opts.runs; run++) {
    // A scan's timing is recorded once its verdict is painted, and the
    // verdict stays until "scan next": wait for the timing, then read the
    // verdict (waiting for the old verdict to go away instead would race
    // with a new one that comes within milliseconds).
    await page.waitForFunction((n) => (window.__tesseraTimings || []).length >= n, run + 1, { timeout: opts.timeoutMs });
    const verdict = page.locator("#verdict[data-outcome]");
    await verdict.waitFor({ state: "visible", timeout: opts.timeoutMs });
    const outcome = await verdict.getAttribute("data-outcome");
    const online = await verdict.getAttribute("data-online");
    result.outcomes.push({ outcome, online });
    result.outcome = outcome;
    result.online = online;
    if (opts.expect && outcome !== opts.expect) matched = false;
    if (opts.online && online !== opts.online) matched = false;
    if (run === 0) await page.screenshot({ path: opts.screenshot });
    if (run + 1 < opts.runs) await page.click("#next");
  }
  result.timings = await page.evaluate(() => window.__tesseraTimings);
  if (errors.length) result.errors = errors;
  status = matched && errors.length === 0 ? 0 : 1;
} catch (e) {
  result.error = String(e && e.message ? e.message.split("\n")[0] : e);
  status = 1;
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(status);
