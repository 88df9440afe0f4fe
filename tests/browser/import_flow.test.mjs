// Import Existing (flows.md F14) in headless Chromium: the sandbox (playing Vercel) sends the
// browser to wharf's Import Resource URL; wharf signs the user in through provider-initiated
// SSO on the way, the user creates a database, and the browser lands back on Vercel's
// completion page only once Vercel has the resource.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { flow, launch, newContext, screenshot, startPair } from './lib/harness.mjs';

const A = `icfg_import${Date.now().toString(36)}`;
let pair, browser;

before(async () => {
  pair = await startPair();
  await flow(pair.sandbox, 'install', { installationId: A });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await pair?.stop();
});

async function sandboxState() {
  return (await fetch(`${pair.sandbox}/_sandbox/state`)).json();
}

describe('Import Existing', () => {
  test('signs in on the way, creates a database, and returns to Vercel once imported', async () => {
    const started = await fetch(`${pair.sandbox}/_sandbox/imports`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ installationId: A, productId: 'sqlite-db' }),
    });
    assert.equal(started.status, 200);
    const imp = await started.json();
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.goto(imp.url);
    assert.ok(page.url().startsWith(`${pair.wharf}/dashboard/import?`), page.url());
    await page.fill('#import-new input[name=name]', 'browser-import');
    await screenshot(page, 'import');
    await Promise.all([page.waitForURL(`${imp.return}?**`), page.click('#import-new button[type=submit]')]);
    assert.match(await page.locator('h1').innerText(), /imported/);
    const state = await sandboxState();
    assert.equal(state.imports[imp.state].status, 'completed');
    const rid = state.imports[imp.state].resourceId;
    assert.equal(state.resources[A][rid].name, 'browser-import');
    assert.ok(state.resources[A][rid].importedAt);
    assert.deepEqual(context.problems, []);
    await context.close();
  });
});
