// The flags product's editor in headless Chromium: Vercel's deep link to a flag, creating,
// rolling out, toggling and archiving flags in the dashboard, each change seen through OFREP
// (what an app's OpenFeature provider calls), and USER sessions read-only.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { flow, launch, newContext, screenshot, startPair } from './lib/harness.mjs';

const A = `icfg_flagsA${Date.now().toString(36)}`;
let pair, browser, rid, secrets, flagId;

async function evaluate(key, context = { targetingKey: 'user-1' }) {
  const r = await fetch(`${secrets.FLAGS_URL}/ofrep/v1/evaluate/flags/${key}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${secrets.FLAGS_SDK_KEY}` },
    body: JSON.stringify({ context }),
  });
  return { status: r.status, ...(await r.json()) };
}

async function signedIn(params) {
  const context = await newContext(browser);
  const page = await context.newPage();
  const q = new URLSearchParams({ installationId: A, ...params });
  await page.goto(`${pair.sandbox}/_sandbox/sso?${q}`);
  return { context, page };
}

function clean(context, ...allowed) {
  const problems = context.problems.filter((p) => !allowed.some((a) => p.includes(a)));
  context.problems.length = 0;
  assert.deepEqual(problems, [], 'console errors or uncaught exceptions');
}

before(async () => {
  pair = await startPair();
  await flow(pair.sandbox, 'install', { installationId: A });
  const out = await flow(pair.sandbox, 'provision', {
    installationId: A, productId: 'flags', name: 'web-flags', billingPlanId: 'flags-free',
  });
  rid = out.response.id;
  secrets = Object.fromEntries(out.response.secrets.map((s) => [s.name, s.value]));
  const r = await fetch(`${secrets.FLAGS_URL}/flags`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${secrets.FLAGS_ADMIN_KEY}` },
    body: JSON.stringify({
      key: 'dark-mode', type: 'boolean', name: 'Dark mode',
      variants: { on: true, off: false }, defaultVariant: 'off',
    }),
  });
  const text = await r.text();
  assert.equal(r.status, 201, text);
  flagId = JSON.parse(text).id;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await pair?.stop();
});

describe('the flag editor as ADMIN', () => {
  test('a deep link from Vercel lands on the flag; roll out, toggle, archive', async () => {
    const { page, context } = await signedIn({ resourceId: rid, experimentationItemId: flagId });
    assert.equal(page.url(), `${pair.wharf}/dashboard/resources/${rid}/flags/dark-mode`);
    assert.match(await page.locator('#flag-title').innerText(), /Dark mode\s+on/);
    assert.deepEqual([(await evaluate('dark-mode')).value, (await evaluate('dark-mode')).reason],
      [false, 'STATIC']);

    // Roll `on` out to everyone: the app now gets true.
    await page.selectOption('#rollout-variant', 'on');
    await page.fill('#rollout-percent', '100');
    await Promise.all([page.waitForNavigation(), page.click('#rollout-save')]);
    assert.match(await page.locator('#flag-serves').innerText(), /rollout: on 100/);
    let e = await evaluate('dark-mode');
    assert.deepEqual([e.value, e.variant, e.reason], [true, 'on', 'SPLIT']);
    await screenshot(page, 'flag-editor');

    // Turn it off: the default variant, reason DISABLED; on again: back to the rollout.
    await Promise.all([page.waitForNavigation(), page.click('#flag-toggle')]);
    assert.match(await page.locator('#flag-title').innerText(), /off/);
    e = await evaluate('dark-mode');
    assert.deepEqual([e.value, e.reason], [false, 'DISABLED']);
    await Promise.all([page.waitForNavigation(), page.click('#flag-toggle')]);
    assert.equal((await evaluate('dark-mode')).value, true);

    // A definition with mistakes is refused with its fields named, and nothing changes.
    await page.fill('#flag-definition-input', JSON.stringify({
      key: 'dark-mode', type: 'boolean', variants: { on: 'yes' }, defaultVariant: 'maybe',
    }));
    await page.click('#flag-save');
    await page.waitForSelector('#flag-errors');
    const errors = await page.locator('#flag-errors').innerText();
    assert.match(errors, /variants\.on/);
    assert.match(errors, /defaultVariant/);
    assert.equal((await evaluate('dark-mode')).value, true);

    // A rule written in the editor: users in NL get `on`, others `off`.
    await page.goto(`${pair.wharf}/dashboard/resources/${rid}/flags/dark-mode`);
    await page.fill('#flag-definition-input', JSON.stringify({
      key: 'dark-mode', type: 'boolean', name: 'Dark mode', variants: { on: true, off: false },
      defaultVariant: 'off',
      rules: [{ conditions: [{ attribute: 'country', operator: 'equals', value: 'NL' }], variant: 'on' }],
    }));
    await Promise.all([page.waitForNavigation(), page.click('#flag-save')]);
    assert.equal((await evaluate('dark-mode', { targetingKey: 'u', country: 'NL' })).value, true);
    assert.equal((await evaluate('dark-mode', { targetingKey: 'u', country: 'BE' })).value, false);

    // Archive: retired, served as the default with reason DISABLED.
    await Promise.all([page.waitForNavigation(), page.click('#flag-archive')]);
    assert.match(await page.locator('#flag-title').innerText(), /archived/);
    assert.equal((await evaluate('dark-mode', { targetingKey: 'u', country: 'NL' })).reason, 'DISABLED');
    clean(context, 'status of 400');
    await context.close();
  });

  test('creates a flag from the resource page', async () => {
    const { page, context } = await signedIn({ resourceId: rid });
    assert.equal(page.url(), `${pair.wharf}/dashboard/resources/${rid}`);
    assert.equal(await page.locator('#flags tr[data-flag-key="dark-mode"]').count(), 1);
    await page.fill('#new-flag-key', 'checkout-copy');
    await page.fill('#new-flag-name', 'Checkout copy');
    await page.selectOption('#new-flag-type', 'string');
    await Promise.all([page.waitForNavigation(), page.click('#new-flag-create')]);
    assert.equal(page.url(), `${pair.wharf}/dashboard/resources/${rid}/flags/checkout-copy`);
    const e = await evaluate('checkout-copy');
    assert.deepEqual([e.status, e.value, e.variant], [200, '', 'default']);
    await page.goto(`${pair.wharf}/dashboard/resources/${rid}`);
    await screenshot(page, 'flags-list');
    clean(context);
    await context.close();
  });
});

describe('the flag editor as USER', () => {
  test('shows flags read-only and refuses changes', async () => {
    const { page, context } = await signedIn({ resourceId: rid, role: 'USER' });
    await page.goto(`${pair.wharf}/dashboard/resources/${rid}/flags/dark-mode`);
    assert.equal(await page.locator('#flag-toggle').count(), 0);
    assert.equal(await page.locator('#flag-definition-input').count(), 0);
    assert.match(await page.locator('#read-only').innerText(), /read-only/);
    // A hand-made POST with the session's valid CSRF token is still refused: the role is
    // checked server-side.
    const csrf = await page.locator('input[name="csrf"]').first().getAttribute('value');
    assert.ok(csrf, 'the sign-out form carries the CSRF token');
    const status = await page.evaluate(async ([r, token]) => (await fetch(`/dashboard/resources/${r}/flags/dark-mode/toggle`, {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: `csrf=${encodeURIComponent(token)}`,
    })).status, [rid, csrf]);
    assert.equal(status, 403);
    assert.match(await (await fetch(`${secrets.FLAGS_URL}/flags/dark-mode`, {
      headers: { Authorization: `Bearer ${secrets.FLAGS_ADMIN_KEY}` },
    })).text(), /"enabled":true/);
    clean(context, 'status of 403');
    await context.close();
  });
});
