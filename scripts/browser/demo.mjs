// Load echo-server's demo page in headless Chromium, send a short text and a
// message over 64 KiB through its form, check that both echoes appear on the
// page, and save a screenshot.
//
//   DEMO_URL=http://127.0.0.1:8765/ SCREENSHOT=demo.png \
//   BROWSER_DEPS=target/browser-test node scripts/browser/demo.mjs
//
// BROWSER_DEPS is where `npm ci` installed this directory's package.json.
// scripts/browser-test.sh sets everything up and runs this.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

const url = process.env.DEMO_URL;
const screenshot = process.env.SCREENSHOT;
const deps = process.env.BROWSER_DEPS;
assert.ok(url && screenshot && deps, "set DEMO_URL, SCREENSHOT and BROWSER_DEPS");
const { chromium } = createRequire(path.resolve(deps, "package.json"))("playwright-core");

const STEP_MS = 15_000;
const short = "héllo from Chromium ✓";
// 70,000 bytes, over 64 KiB: the server takes and echoes it in several chunks.
const long = Array.from({ length: 7_000 }, (_, i) => String(i % 10).repeat(9) + " ").join("");
assert.ok(long.length > 64 * 1024);

const profile = mkdtempSync(path.join(tmpdir(), "wsproto-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  timeout: 30_000,
  viewport: { width: 1000, height: 700 },
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = browser.pages()[0] ?? (await browser.newPage());
  const errors = [];
  page.on("pageerror", (err) => errors.push(String(err)));

  await page.goto(url, { timeout: STEP_MS });
  await page.waitForSelector("#status.open", { timeout: STEP_MS });
  await page.waitForSelector("#send:not([disabled])", { timeout: STEP_MS });

  // The long message first, so that the short one and its echo end up at
  // the top of the log (newest first), above the long echo.
  for (const text of [long, short]) {
    await page.fill("#message", text);
    await page.click("#send");
    await page.waitForFunction(
      (expected) => [...document.querySelectorAll("#log li.echo")].some((li) => li.textContent === expected),
      text,
      { timeout: STEP_MS },
    );
  }

  const log = await page.$$eval("#log li", (items) => items.map((li) => [li.className, li.textContent]));
  const echoes = log.filter(([kind]) => kind === "echo").map(([, text]) => text);
  assert.deepEqual(echoes, [short, long], "each message echoed once, newest first");
  assert.deepEqual(log.filter(([kind]) => kind === "info"), [], "no connection errors");
  assert.match(await page.textContent("#status"), /^Connected to ws:\/\//);
  assert.deepEqual(errors, [], "no script errors");

  await page.screenshot({ path: screenshot });
  console.log(`echoes seen on the page: ${short.length} and ${long.length} characters`);
  console.log(`screenshot: ${screenshot}`);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
