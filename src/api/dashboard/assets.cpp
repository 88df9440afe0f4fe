// The dashboard's stylesheet and script, embedded: no build step, no CDN, and the CSP can
// forbid every inline script and style.
#include "api/dashboard/routes.h"

namespace wharf::api::dashboard {
namespace {

constexpr const char* kCss = R"css(
:root { --fg: #111; --muted: #666; --bg: #fafafa; --card: #fff; --line: #e4e4e7; --accent: #0b63ce;
        --ok: #127a3a; --warn: #a15c00; --err: #b42318; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
       background: var(--bg); }
header.top { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem; padding: .75rem 1rem;
             background: #000; color: #fff; }
header.top a { color: #fff; text-decoration: none; }
.brand { font-weight: 700; letter-spacing: .02em; }
nav { display: flex; flex-wrap: wrap; gap: 1rem; }
nav a:hover { text-decoration: underline; }
.who { margin-left: auto; display: flex; align-items: center; gap: .5rem; flex-wrap: wrap; }
main { max-width: 1000px; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.5rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 0 0 .75rem; }
a { color: var(--accent); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1rem;
        margin: 0 0 1rem; }
.muted { color: var(--muted); font-weight: normal; }
.mono, code, textarea { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: .85em; color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; }
tr.highlight { background: #fff7d6; }
.status, .role { display: inline-block; padding: 0 .5rem; border-radius: 999px; font-size: .8rem;
                 border: 1px solid currentColor; vertical-align: middle; }
.status-ready, .status-paid { color: var(--ok); }
.status-suspended, .status-notpaid, .status-error { color: var(--err); }
.status-pending, .status-onboarding, .status-scheduled, .status-invoiced { color: var(--warn); }
.role { color: #fff; }
.notice { border-left: 4px solid var(--accent); background: #eef5ff; padding: .5rem .75rem;
          margin: 0 0 1rem; border-radius: 4px; }
.notice-warn { border-color: var(--warn); background: #fff6e5; }
.notice-error { border-color: var(--err); background: #fdecea; }
.error h1 { color: var(--err); }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.secret { overflow-wrap: anywhere; }
form.inline { display: inline; }
button, .button { display: inline-block; font: inherit; padding: .4rem .9rem; border-radius: 6px;
                  border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer;
                  text-decoration: none; }
button.secondary { background: #fff; color: var(--accent); }
button.link { background: none; border: none; color: #fff; padding: 0; text-decoration: underline; }
textarea { width: 100%; padding: .5rem; border: 1px solid var(--line); border-radius: 6px; margin: .25rem 0 .5rem;
           display: block; }
.console-output { margin-top: .75rem; overflow-x: auto; }
.console-output p { margin: .25rem 0; white-space: pre-wrap; }
.console-output .error { color: var(--err); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 1rem; }
figure.chart { margin: 0; }
figure.chart svg { width: 100%; height: auto; display: block; }
svg .bar { fill: var(--accent); }
svg .axis { stroke: #999; stroke-width: 1; }
svg .grid { stroke: #ddd; stroke-dasharray: 4 4; }
svg .tick { font-size: 14px; fill: var(--muted); }
.empty { color: var(--muted); font-style: italic; }
.crumbs { margin: 0; font-size: .9em; }
@media (max-width: 600px) {
  main { padding: .5rem; }
  .who { margin-left: 0; width: 100%; }
  dl.kv { grid-template-columns: 1fr; }
  h1 { font-size: 1.25rem; }
}
)css";

constexpr const char* kJs = R"js(
'use strict';
// Forms that ask first (rotation).
document.addEventListener('submit', (ev) => {
  const f = ev.target;
  if (f.dataset && f.dataset.confirm && !window.confirm(f.dataset.confirm)) ev.preventDefault();
});

// The SQL console: posts {input} with the session's CSRF token and renders REPL blocks
// (paragraphs and tables of text blocks) with textContent only.
function text(block) {
  const el = document.createElement(block.href ? 'a' : 'span');
  el.textContent = block.text == null ? '' : String(block.text);
  if (block.href && /^https?:/.test(block.href)) el.href = block.href;
  if (block.bold) el.classList.add('bold');
  return el;
}
function render(out, blocks) {
  for (const b of blocks) {
    if (b.type === 'table') {
      const table = document.createElement('table');
      if (b.header) {
        const tr = table.createTHead().insertRow();
        for (const c of b.header) { const th = document.createElement('th'); th.appendChild(text(c)); tr.appendChild(th); }
      }
      const body = table.createTBody();
      for (const row of b.rows || []) {
        const tr = body.insertRow();
        for (const c of row) tr.insertCell().appendChild(text(c));
      }
      out.appendChild(table);
    } else {
      const p = document.createElement('p');
      for (const c of b.children || []) p.appendChild(text(c));
      out.appendChild(p);
    }
  }
}
const form = document.getElementById('console-form');
if (form) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const out = document.getElementById('console-output');
    const input = form.querySelector('textarea').value;
    out.textContent = 'Running…';
    out.dataset.state = 'running';
    try {
      const res = await fetch(form.dataset.endpoint, {
        method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json', 'X-CSRF-Token': form.dataset.csrf},
        body: JSON.stringify({input})});
      const body = await res.json();
      out.textContent = '';
      if (!res.ok) {
        const p = document.createElement('p');
        p.className = 'error';
        p.textContent = (body.error && body.error.message) || ('HTTP ' + res.status);
        out.appendChild(p);
        out.dataset.state = 'error';
        return;
      }
      render(out, Array.isArray(body) ? body : (body.blocks || []));
      out.dataset.state = 'done';
    } catch (e) {
      out.textContent = 'The request failed: ' + e.message;
      out.dataset.state = 'error';
    }
  });
}
)js";

net::Response asset(const char* type, const char* body) {
  net::Response r;
  r.content_type = type;
  r.body = body;
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

}  // namespace

void add_asset_routes(RouteTable& routes) {
  routes.add("GET", "/dashboard/assets/app.css",
             {false, {}, false, [](Context&) { return asset("text/css; charset=utf-8", kCss); }});
  routes.add(
      "GET", "/dashboard/assets/app.js",
      {false, {}, false, [](Context&) { return asset("text/javascript; charset=utf-8", kJs); }});
}

}  // namespace wharf::api::dashboard
