// Real `wharf-sandbox` and `wharf` processes wired to each other on loopback (as
// tests/integration/lib/sandbox.py's start_pair does), and headless Chromium (Debian's
// /usr/bin/chromium) driven by playwright-core.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const ARTIFACTS = process.env.ARTIFACTS_DIR || path.join(REPO, 'build', 'artifacts', 'browser');
const WHARF_BIN = process.env.WHARF_BIN || path.join(REPO, 'build', 'wharf');
const SANDBOX_BIN = process.env.SANDBOX_BIN || path.join(REPO, 'build', 'wharf-sandbox');
export const CLIENT_ID = 'oac_browserTest000000000000';
const CLIENT_SECRET = 'browser-client-secret-0123456789';
export const URL_SLUG = 'wharf-browser';

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('WHARF_') && !k.startsWith('INTEGRATION_') && !k.startsWith('SANDBOX_')) env[k] = v;
  return env;
}

async function waitFor(url, proc, logPath) {
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`${url}: process exited; log:\n${tail(logPath)}`);
    try {
      const r = await fetch(url);
      if (r.status === 200) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} not ready; log:\n${tail(logPath)}`);
}

function tail(file) {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-30).join('\n'); } catch { return ''; }
}

function start(bin, env, dir, name) {
  const log = path.join(dir, `${name}.log`);
  const fd = fs.openSync(log, 'a');
  const proc = spawn(bin, ['serve'], { env, cwd: dir, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  return { proc, log };
}

export async function startPair() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wharf-browser-'));
  const [sport, wport] = [await freePort(), await freePort()];
  const sandbox = `http://127.0.0.1:${sport}`;
  const wharf = `http://127.0.0.1:${wport}`;
  const common = { ...cleanEnv(), INTEGRATION_CLIENT_ID: CLIENT_ID, INTEGRATION_CLIENT_SECRET: CLIENT_SECRET };
  const sb = start(SANDBOX_BIN, {
    ...common, SANDBOX_LISTEN: `127.0.0.1:${sport}`, SANDBOX_DATA_DIR: path.join(dir, 'sandbox'),
    SANDBOX_PARTNER_URL: wharf, SANDBOX_URL_SLUG: URL_SLUG,
  }, dir, 'sandbox');
  await waitFor(`${sandbox}/_sandbox/config`, sb.proc, sb.log);
  const w = start(WHARF_BIN, {
    ...common, WHARF_LISTEN: `127.0.0.1:${wport}`, WHARF_DATA_DIR: path.join(dir, 'wharf'),
    WHARF_OIDC_ISSUER: sandbox, WHARF_JWKS_URL: `${sandbox}/.well-known/jwks`,
    WHARF_VERCEL_API_URL: sandbox, WHARF_URL_SLUG: URL_SLUG,
    WHARF_VERCEL_SSO_URL: `${sandbox}/sso/integrations`, WHARF_SUPPORT_EMAIL: 'help@provider.example',
    WHARF_TEST_CLOCK: '1',
  }, dir, 'wharf');
  await waitFor(`${wharf}/readyz`, w.proc, w.log);
  return {
    dir, sandbox, wharf,
    logs: () => `--- sandbox ---\n${tail(sb.log)}\n--- wharf ---\n${tail(w.log)}`,
    async stop() {
      for (const p of [w.proc, sb.proc]) {
        if (p.exitCode !== null) continue;
        const done = new Promise((r) => p.once('exit', r));
        p.kill('SIGTERM');
        await done;
      }
    },
  };
}

// Moves Vercel's clock and wharf's (which then runs a billing pass and drains its outbox).
export async function setClocks(pair, ms) {
  for (const url of [`${pair.sandbox}/_sandbox/clock`, `${pair.wharf}/ops/clock`]) {
    const r = await fetch(url, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ setMs: ms }),
    });
    if (r.status !== 200) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  }
}

// POST /_sandbox/flows/<flow>; the flow must succeed.
export async function flow(sandbox, name, params) {
  const r = await fetch(`${sandbox}/_sandbox/flows/${name}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(params),
  });
  const body = await r.json();
  if (r.status !== 200) throw new Error(`flow ${name}: ${r.status} ${JSON.stringify(body)}`);
  return body;
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}

// A browser context whose pages record console errors and uncaught exceptions.
export async function newContext(browser, options = {}) {
  const context = await browser.newContext(options);
  context.problems = [];
  context.on('page', (page) => watch(context, page));
  return context;
}

function watch(context, page) {
  page.on('console', (m) => {
    if (m.type() === 'error') context.problems.push(`${page.url()}: console: ${m.text()}`);
  });
  page.on('pageerror', (e) => context.problems.push(`${page.url()}: uncaught: ${e.message}`));
}

export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
