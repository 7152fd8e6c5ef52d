// End-to-end: the live session page at `/` in headless Chromium, for sessions the
// native client published (scripts/test-e2e runs the agent_runner example first:
// `e2e-ok` completes, `e2e-crash` panics mid-turn under the crash guard).
// Needs GAPLESS_URL, GAPLESS_SHOTS (where screenshots go) and GAPLESS_EXPECT_MODE:
// "wasm" when the browser package is served (the page then reads through it),
// "server" otherwise.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const base = process.env.GAPLESS_URL;
const shots = process.env.GAPLESS_SHOTS;
mkdirSync(shots, { recursive: true });
let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});
after(async () => { await browser?.close(); });

async function open(session) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}/#${session}`);
  await page.waitForFunction(() => document.body.dataset.mode);
  const mode = await page.evaluate(() => document.body.dataset.mode);
  assert.equal(mode, process.env.GAPLESS_EXPECT_MODE, "the page reads sessions the expected way");
  return { page, errors };
}

test("a completed session shows its status, text, tools and files, also after a reload", async () => {
  const { page, errors } = await open("e2e-ok");
  for (const pass of ["first load", "reload"]) {
    await page.waitForSelector("#status.completed", { timeout: 15000 });
    assert.match(await page.textContent("#text"), /Let me look at the repository layout first\./, pass);
    assert.match(await page.textContent("#turns"), /turn 3 of 3/, pass);
    assert.equal(await page.locator("#tools .tool").count(), 3, pass);
    assert.match(await page.textContent("#files"), /server\/src\/history\.rs/, pass);
    if (pass === "first load") await page.reload();
  }
  await page.screenshot({ path: `${shots}/completed.png` });
  assert.deepEqual(errors, []);
  await page.close();
});

test("a runner that crashed mid-turn shows failed with the crash guard's error", async () => {
  const { page, errors } = await open("e2e-crash");
  await page.waitForSelector("#status.failed", { timeout: 15000 });
  assert.match(await page.textContent("#status"), /UNCAUGHT_ERROR/);
  assert.match(await page.textContent("#error"), /simulated crash in turn 2/);
  await page.reload();
  await page.waitForSelector("#status.failed", { timeout: 15000 });
  await page.screenshot({ path: `${shots}/crashed.png` });
  assert.deepEqual(errors, []);
  await page.close();
});

test("a session whose producer went silent shows stalled", async () => {
  const { page, errors } = await open("e2e-silent");
  await page.waitForSelector("#status.stalled", { timeout: 20000 });
  assert.match(await page.textContent("#status"), /stalled/);
  await page.screenshot({ path: `${shots}/stalled.png` });
  assert.deepEqual(errors, []);
  await page.close();
});
