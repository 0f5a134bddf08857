// The balancer-manager page in Debian's headless Chromium: a member whose
// health checks fail shows as hc-failed, its Health cell naming the check
// (GET failed, the status); the healthy one stays ok. Launched by
// tests/tests/manager_browser.rs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const { MANAGER_URL, MEMBER0, MEMBER1 } = process.env;

test('a member failing its checks shows as hc-failed', { timeout: 60_000 }, async () => {
  assert.ok(MANAGER_URL && MEMBER0 && MEMBER1, 'run through cargo test (manager_browser.rs)');
  const profile = mkdtempSync(join(tmpdir(), 'modproxy-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    await page.goto(MANAGER_URL);
    const cell = (url, n) => `tr[data-member="${url}"] td:nth-child(${n})`;
    // State is the 6th column, Health the 14th; the page refreshes itself.
    await page.waitForFunction(s => document.querySelector(s)?.textContent === 'hc-failed', cell(MEMBER1, 6), { timeout: 15_000 });
    const health = await page.locator(cell(MEMBER1, 14)).textContent();
    assert.match(health, /^hc-failed GET failed, 0 pass \/ \d+ fail in a row: status 503$/);
    assert.equal(await page.locator(cell(MEMBER0, 6)).textContent(), 'ok');
    assert.match(await page.locator(cell(MEMBER0, 14)).textContent(), /^ok GET passed/);
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
