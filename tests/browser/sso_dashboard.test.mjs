// Open in Provider end to end in headless Chromium: the sandbox (playing Vercel) sends the
// browser to wharf's Redirect Login URL, wharf exchanges the code and opens the dashboard.
// Screenshots of the main pages go to build/artifacts/browser/.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { flow, launch, newContext, screenshot, setClocks, startPair, URL_SLUG } from './lib/harness.mjs';

const A = `icfg_browserA${Date.now().toString(36)}`;
const B = `icfg_browserB${Date.now().toString(36)}`;
let pair, browser, ridA, ridB, admin;

async function provision(icfg, name, plan = 'sqlite-free') {
  const out = await flow(pair.sandbox, 'provision', {
    installationId: icfg, productId: 'sqlite-db', name, billingPlanId: plan,
  });
  return out.resource?.id || out.getResource.response.id;
}

// Open in Provider as Vercel does it (the sandbox's browser entry point).
function openInProvider(params) {
  return `${pair.sandbox}/_sandbox/sso?${new URLSearchParams({ installationId: A, ...params })}`;
}

async function signedIn(params = {}, options = {}) {
  const context = await newContext(browser, options);
  const page = await context.newPage();
  await page.goto(openInProvider(params));
  return { context, page };
}

async function sessionCookie(context) {
  return (await context.cookies()).find((c) => c.name === 'wharf_session');
}

function clean(context, ...allowed) {
  const problems = context.problems.filter((p) => !allowed.some((a) => p.includes(a)));
  context.problems.length = 0;  // each test answers for its own pages
  assert.deepEqual(problems, [], 'console errors or uncaught exceptions');
}

before(async () => {
  pair = await startPair();
  await flow(pair.sandbox, 'install', { installationId: A });
  await flow(pair.sandbox, 'install', { installationId: B });
  ridA = await provision(A, 'orders-db');
  ridB = await provision(B, 'other-team-db');
  browser = await launch();
  admin = await signedIn({ resourceId: ridA });
});

after(async () => {
  await browser?.close();
  await pair?.stop();
});

describe('Open in Provider as ADMIN', () => {
  test('signs in and lands on the resource, with a safe session cookie', async () => {
    const { page, context } = admin;
    assert.equal(page.url(), `${pair.wharf}/dashboard/resources/${ridA}`);
    assert.match(await page.locator('h1').innerText(), /orders-db\s+ready/);
    assert.match(await page.locator('.who').innerText(), /ADMIN/);
    assert.equal(await page.locator('.masked').count(), 3);
    const c = await sessionCookie(context);
    assert.ok(c, 'session cookie set');
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, 'Lax');
    assert.equal(c.secure, false, 'no Secure flag on loopback http');
    assert.match(c.value, /^[A-Za-z0-9_-]{43}$/);
    await screenshot(page, 'resource');
    clean(context);
  });

  test('runs a query in the SQL console', async () => {
    const { page, context } = admin;
    const run = async (sql) => {
      await page.fill('#console-input', sql);
      await page.click('#console-run');
      await page.waitForFunction(() => ['done', 'error'].includes(document.getElementById('console-output').dataset.state));
      return page.locator('#console-output');
    };
    await run('create table orders(amount integer); insert into orders values (40), (2);');
    const out = await run('select sum(amount) as total from orders');
    assert.equal(await out.getAttribute('data-state'), 'done');
    assert.equal(await out.locator('th').innerText(), 'total');
    assert.equal(await out.locator('td').innerText(), '42');
    await screenshot(page, 'console');
    clean(context);
  });

  test('sees usage as charts over the billing period', async () => {
    const { page, context } = admin;
    const today = new Date().toISOString().slice(0, 10);
    // Usage reaches the ledger within a second (the server flushes it in batches).
    let bar;
    for (let i = 0; i < 40; i++) {
      await page.goto(`${pair.wharf}/dashboard/usage`);
      bar = await page.locator(`section[data-resource-id="${ridA}"] svg[data-metric="queries"] rect.bar title`, { hasText: today }).textContent();
      if (!bar.endsWith(': 0')) break;
      await page.waitForTimeout(250);
    }
    assert.match(bar, new RegExp(`^${today}: [1-9]\\d*$`));
    const svg = page.locator(`section[data-resource-id="${ridA}"] svg[data-metric="queries"]`);
    assert.equal(await svg.locator('rect.bar').count(), Number(today.slice(8, 10)), 'one bar per day so far');
    const box = await svg.locator('rect.bar').last().boundingBox();
    assert.ok(box && box.height > 1, 'today\'s bar is drawn');
    for (const m of ['rowsRead', 'rowsWritten', 'storageBytes'])
      assert.equal(await page.locator(`section[data-resource-id="${ridA}"] svg[data-metric="${m}"]`).count(), 1);
    await screenshot(page, 'usage');
    clean(context);
  });

  test('sees no invoices or balances before any are due', async () => {
    const { page, context } = admin;
    await page.goto(`${pair.wharf}/dashboard/billing`);
    assert.match(await page.locator('#invoices').innerText(), /No invoices yet/);
    assert.match(await page.locator('#balances').innerText(), /No prepaid balances/);
    await screenshot(page, 'billing');
    await page.goto(`${pair.wharf}/dashboard/support`);
    assert.match(await page.locator('#support').innerText(), /help@provider\.example/);
    clean(context);
  });

  test('reveals and rotates secrets, suspends and resumes', async () => {
    const { page, context } = admin;
    await page.goto(`${pair.wharf}/dashboard/resources/${ridA}`);
    await page.click('#show-secrets');
    const values = page.locator('.secret-value');
    assert.equal(await values.count(), 3);
    const before = await values.nth(1).innerText();
    assert.match(before, /^wdb_/);
    page.once('dialog', (d) => d.accept());
    await page.click('#rotate');
    assert.match(await page.locator('.notice').first().innerText(), /Secrets rotated/);
    const rotated = await page.locator('.secret-value').nth(1).innerText();
    assert.match(rotated, /^wdb_/);
    assert.notEqual(rotated, before);
    // Rotated on our side: Vercel gets the new secrets (Update Resource Secrets) for the
    // projects' environment variables.
    let env;
    for (let i = 0; i < 100; i++) {
      env = await (await fetch(`${pair.sandbox}/_sandbox/env/${A}/${ridA}`)).json();
      if (env.production.DATABASE_TOKEN === rotated) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(env.production.DATABASE_TOKEN, rotated);
    await page.click('#suspend');
    assert.match(await page.locator('h1').innerText(), /suspended/);
    await page.click('#resume');
    assert.match(await page.locator('h1').innerText(), /ready/);
    clean(context);
  });

  test('sees nothing of another installation', async () => {
    const { page, context } = admin;
    await page.goto(`${pair.wharf}/dashboard`);
    assert.equal(await page.locator(`tr[data-resource-id="${ridA}"]`).count(), 1);
    assert.equal(await page.locator(`tr[data-resource-id="${ridB}"]`).count(), 0);
    await screenshot(page, 'home');
    const r = await page.goto(`${pair.wharf}/dashboard/resources/${ridB}`);
    assert.equal(r.status(), 404);
    assert.doesNotMatch(await page.content(), /other-team-db/);
    const console = await page.evaluate(async ([rid, csrf]) => {
      const res = await fetch(`/dashboard/resources/${rid}/console`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
        body: JSON.stringify({ input: 'select 1' }) });
      return res.status;
    }, [ridB, await csrfOf(page)]);
    assert.equal(console, 404);
    clean(context, 'status of 404');
  });

  test('refuses a form without the CSRF token', async () => {
    const { page, context } = admin;
    await page.goto(`${pair.wharf}/dashboard/resources/${ridA}`);
    const status = await page.evaluate(async (rid) => (await fetch(`/dashboard/resources/${rid}/rotate`, {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'csrf=forged' })).status, ridA);
    assert.equal(status, 403);
    clean(context, 'status of 403');
  });

  test('is usable on a narrow screen', async () => {
    const context = await newContext(browser, { viewport: { width: 375, height: 800 } });
    await context.addCookies(await admin.context.cookies());
    const page = await context.newPage();
    await page.goto(`${pair.wharf}/dashboard/resources/${ridA}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
    assert.ok(await page.locator('#console-run').isVisible());
    await screenshot(page, 'resource-narrow');
    clean(context);
    await context.close();
  });
});

async function csrfOf(page) {
  await page.goto(`${pair.wharf}/dashboard`);
  return page.locator('input[name="csrf"]').first().getAttribute('value');
}

describe('Open in Provider as USER (Billing/Viewer)', () => {
  test('gets read-only views and cannot rotate', async () => {
    const { page, context } = await signedIn({ resourceId: ridA, role: 'USER' });
    assert.equal(page.url(), `${pair.wharf}/dashboard/resources/${ridA}`);
    assert.match(await page.locator('.who').innerText(), /USER/);
    assert.equal(await page.locator('#rotate').count(), 0);
    assert.equal(await page.locator('#show-secrets').count(), 0);
    assert.equal(await page.locator('#suspend').count(), 0);
    assert.match(await page.locator('#read-only').innerText(), /read-only/);
    const csrf = await page.locator('input[name="csrf"]').first().getAttribute('value');
    // A hand-made POST with a valid CSRF token is still refused: the role is checked server-side.
    const statuses = await page.evaluate(async ([rid, token]) => {
      const post = (path) => fetch(`/dashboard/resources/${rid}/${path}`, { method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: `csrf=${encodeURIComponent(token)}` });
      return [(await post('rotate')).status, (await post('secrets')).status, (await post('suspend')).status];
    }, [ridA, csrf]);
    assert.deepEqual(statuses, [403, 403, 403]);
    // The console runs read-only for USER.
    await page.fill('#console-input', 'insert into orders values (1)');
    await page.click('#console-run');
    await page.waitForFunction(() => ['done', 'error'].includes(document.getElementById('console-output').dataset.state));
    assert.match(await page.locator('#console-output').innerText(), /read.only/i);
    await screenshot(page, 'resource-user');
    clean(context, 'status of 403', 'status of 400');
    await context.close();
  });
});

describe('refused sign-ins', () => {
  test('a tampered cookie is no session', async () => {
    const context = await newContext(browser);
    const c = await sessionCookie(admin.context);
    const flipped = (c.value[0] === 'A' ? 'B' : 'A') + c.value.slice(1);
    await context.addCookies([{ ...c, value: flipped }]);
    const page = await context.newPage();
    const r = await page.goto(`${pair.wharf}/dashboard/resources/${ridA}`);
    assert.equal(r.status(), 401);
    assert.match(await page.locator('h1').innerText(), /not signed in/);
    assert.doesNotMatch(await page.content(), /orders-db/);
    await context.close();
  });

  test('a replayed code is refused and creates no session', async () => {
    const { redirectUrl } = await flow(pair.sandbox, 'sso', { installationId: A, resourceId: ridA });
    const first = await newContext(browser);
    const p1 = await first.newPage();
    await p1.goto(redirectUrl);
    assert.equal(p1.url(), `${pair.wharf}/dashboard/resources/${ridA}`);
    const second = await newContext(browser);
    const p2 = await second.newPage();
    const r = await p2.goto(redirectUrl);
    assert.equal(r.status(), 400);
    assert.match(await p2.locator('.msg').innerText(), /already used/);
    assert.equal(await sessionCookie(second), undefined);
    await screenshot(p2, 'sso-error');
    await first.close();
    await second.close();
  });

  test('a bad state is refused', async () => {
    const { redirectUrl } = await flow(pair.sandbox, 'sso', { installationId: A });
    const context = await newContext(browser);
    const page = await context.newPage();
    const r = await page.goto(redirectUrl.replace(/state=[^&]+/, 'state=not-the-state'));
    assert.equal(r.status(), 400);
    assert.match(await page.locator('.msg').innerText(), /state/);
    assert.equal(await sessionCookie(context), undefined);
    await context.close();
  });

  test('an open-redirect url is refused; a same-origin url is followed', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    for (const evil of ['https://evil.example/phish', `${pair.wharf}.evil.example/`]) {
      const r = await page.goto(openInProvider({ url: evil }));
      assert.equal(r.status(), 400);
      assert.ok(page.url().startsWith(`${pair.wharf}/sso/callback?`), page.url());
      assert.match(await page.locator('.msg').innerText(), /outside this site/);
      assert.equal(await sessionCookie(context), undefined);
    }
    await page.goto(openInProvider({ url: `${pair.wharf}/dashboard/usage` }));
    assert.equal(page.url(), `${pair.wharf}/dashboard/usage`);
    await context.close();
  });
});

describe('deep links and provider-initiated SSO', () => {
  test('path, invoice and check parameters land on their pages', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.goto(openInProvider({ path: 'billing' }));
    assert.equal(page.url(), `${pair.wharf}/dashboard/billing`);
    await page.goto(openInProvider({ invoiceId: 'inv_missing1' }));
    assert.equal(page.url(), `${pair.wharf}/dashboard/billing?invoice=inv_missing1`);
    assert.match(await page.locator('.notice').innerText(), /inv_missing1/);
    await page.goto(openInProvider({ resourceId: ridA, projectId: 'prj_ff7777b9', checkId: 'chk_1' }));
    assert.equal(page.url(), `${pair.wharf}/dashboard/resources/${ridA}?project=prj_ff7777b9&check=chk_1`);
    assert.match(await page.locator('.notice').first().innerText(), /chk_1/);
    await page.goto(openInProvider({ path: 'support' }));
    assert.equal(page.url(), `${pair.wharf}/dashboard/support`);
    clean(context);
    await context.close();
  });

  test('a provider-initiated link signs in through Vercel and lands on the page', async () => {
    const { page } = admin;
    await page.goto(`${pair.wharf}/dashboard`);
    const { url } = await page.evaluate(async () => (await fetch('/dashboard/api/sso-link?path=usage')).json());
    assert.equal(url, `${pair.sandbox}/sso/integrations/${URL_SLUG}/${A}?path=usage`);
    const context = await newContext(browser);
    const fresh = await context.newPage();
    await fresh.goto(url);
    assert.equal(fresh.url(), `${pair.wharf}/dashboard/usage`);
    assert.ok(await sessionCookie(context));
    await context.close();
  });

  test('sign-out ends the session', async () => {
    const { context, page } = await signedIn();
    assert.equal(page.url(), `${pair.wharf}/dashboard`);
    const cookie = await sessionCookie(context);
    await page.click('header button.link');
    assert.match(await page.locator('h1').innerText(), /signed out/);
    assert.equal(await sessionCookie(context), undefined);
    // The old cookie value no longer opens anything.
    const replay = await newContext(browser);
    await replay.addCookies([cookie]);
    const p = await replay.newPage();
    assert.equal((await p.goto(`${pair.wharf}/dashboard`)).status(), 401);
    await replay.close();
    await context.close();
  });
});

// marketplace.member.changed (flows.md F20), on installation B's own installer: a role change
// takes effect on the next page without signing in again; NONE ends the session at once.
describe('Team member changes', () => {
  test('a demoted ADMIN loses the rotate button without signing out; NONE signs them out', async () => {
    const { page, context } = await signedIn({ installationId: B, resourceId: ridB });
    assert.equal(page.url(), `${pair.wharf}/dashboard/resources/${ridB}`);
    assert.equal(await page.locator('#rotate').count(), 1);
    const state = await (await fetch(`${pair.sandbox}/_sandbox/state`)).json();
    const memberId = state.installations[B].installedBy;
    const changed = (role) => flow(pair.sandbox, 'webhook', {
      type: 'marketplace.member.changed', installationId: B,
      payload: { installationId: B, configuration: { id: B }, memberId, role },
    });
    await changed('USER');
    await page.reload();
    assert.equal(await page.locator('#rotate').count(), 0, 'no rotate button for USER');
    assert.equal(await page.locator('#read-only').count(), 1);
    assert.match(await page.locator('.who').innerText(), /USER/);
    await screenshot(page, 'member-demoted');
    await changed('ADMIN');
    await page.reload();
    assert.equal(await page.locator('#rotate').count(), 1, 'ADMIN again');
    await changed('NONE');
    const r = await page.reload();
    assert.notEqual(r.status(), 200, 'signed out at once');
    assert.equal(await page.locator('#rotate').count(), 0);
    clean(context, 'status of 401', 'status of 403');
    await context.close();
  });
});

// Last: it moves both clocks a month ahead (sessions signed in before have expired after it).
describe('Billing in the dashboard', () => {
  test('shows the invoice of the period and prepaid balances', async () => {
    const pro = await provision(A, 'paid-db', 'sqlite-pro');
    const credits = await provision(A, 'credits-db', 'sqlite-credits');
    await flow(pair.sandbox, 'purchase', { installationId: A, resourceId: credits, amount: '7.50' });
    const clock = await (await fetch(`${pair.sandbox}/_sandbox/clock`)).json();
    const d = new Date(clock.nowMs);
    // The rest of this month (perhaps under $0.50: carried), then a whole month.
    await setClocks(pair, Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1, 1, 0, 0));
    await setClocks(pair, Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 2, 1, 1, 0, 0));
    const { page, context } = await signedIn({ path: 'billing' });
    assert.equal(page.url(), `${pair.wharf}/dashboard/billing`);
    const rows = page.locator(`#invoices tr:has-text("${pro}")`);
    assert.equal(await rows.count(), 2, await page.locator('#invoices').innerText());
    const row = rows.nth(1);
    assert.match(await row.innerText(), /\$5\.\d\d/);
    assert.match(await row.innerText(), /submitted|scheduled|invoiced/);
    const balances = await page.locator('#balances').innerText();
    assert.match(balances, new RegExp(credits));
    assert.match(balances, /\$7\.50/);
    await screenshot(page, 'billing-invoices');
    // An invoice link from Vercel lands on it, highlighted.
    const invoiceId = await row.getAttribute('data-invoice-id');
    await page.goto(openInProvider({ invoiceId }));
    assert.equal(await page.locator('#invoices tr.highlight').count(), 1);
    clean(context);
    await context.close();
  });
});
