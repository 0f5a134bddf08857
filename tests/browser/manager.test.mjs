// The balancer-manager page in Debian's headless Chromium, driven by
// playwright-core: the page shows both members; "Disable" on one sends all
// traffic (real requests through modproxy) to the other; "Enable" brings
// it back. Launched by tests/tests/manager_browser.rs, which starts
// modproxy and the backends and passes their addresses in the environment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const { MANAGER_URL, SITE_URL, MEMBER0, MEMBER1, SCREENSHOT } = process.env;

/** Bodies of `n` sequential GETs of the proxied site. */
async function picks(n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const r = await fetch(SITE_URL, { headers: { Connection: 'close' } });
    out.push(await r.text());
  }
  return out;
}

test('disable and enable a member from the page', { timeout: 60_000 }, async () => {
  assert.ok(MANAGER_URL && SITE_URL && MEMBER0 && MEMBER1, 'run through cargo test (manager_browser.rs)');
  const profile = mkdtempSync(join(tmpdir(), 'modproxy-chromium-'));
  // A fresh profile (--user-data-dir) each run: playwright takes it as
  // launchPersistentContext's first argument.
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1500, height: 330 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    await page.goto(MANAGER_URL);
    const row = url => page.locator(`tr[data-member="${url}"]`);
    const state = url => row(url).locator('td').nth(5);
    await assert.doesNotReject(row(MEMBER0).waitFor());
    await row(MEMBER1).waitFor();
    assert.equal(await state(MEMBER0).textContent(), 'ok');
    assert.equal(await state(MEMBER1).textContent(), 'ok');

    await row(MEMBER0).getByRole('button', { name: 'Disable' }).click();
    await page.waitForFunction(u => document.querySelector(`tr[data-member="${u}"] td:nth-child(6)`)?.textContent === 'disabled', MEMBER0);
    assert.deepEqual(await picks(4), ['m1', 'm1', 'm1', 'm1'], 'only the enabled member serves');
    // The page refreshes itself: the elected counts of those requests show
    // up without a reload.
    await page.waitForFunction(u => Number(document.querySelector(`tr[data-member="${u}"] td:nth-child(7)`)?.textContent) >= 4, MEMBER1);
    if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT, fullPage: true });

    await row(MEMBER0).getByRole('button', { name: 'Enable' }).click();
    await page.waitForFunction(u => document.querySelector(`tr[data-member="${u}"] td:nth-child(6)`)?.textContent === 'ok', MEMBER0);
    assert.deepEqual((await picks(4)).sort(), ['m0', 'm0', 'm1', 'm1'], 'both serve again');
    // The requests so far, by protocol (fetch speaks HTTP/1.1 here).
    await page.waitForFunction(() => /HTTP\/1\.1 [1-9]/.test(document.getElementById('protocols')?.textContent || ''));

  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
