#include "sandbox/inspector.h"

namespace wharf::sandbox {
namespace {

// The page renders everything client-side from /_sandbox/state, /_sandbox/env and
// /_sandbox/log; all values are inserted as text (never as HTML) so partner-controlled
// strings cannot script the page.
constexpr const char* kPage = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wharf-sandbox inspector</title>
<style>
 body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#fafafa;color:#111}
 header{background:#000;color:#fff;padding:10px 16px;display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}
 header h1{font-size:16px;margin:0} header span{color:#aaa;font-size:12px}
 main{padding:12px 16px;max-width:1200px}
 section{background:#fff;border:1px solid #ddd;border-radius:6px;margin:12px 0;padding:10px 12px;overflow-x:auto}
 h2{font-size:15px;margin:4px 0 8px} h3{font-size:13px;margin:10px 0 4px}
 table{border-collapse:collapse;width:100%;font-size:12px} td,th{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;vertical-align:top}
 th{background:#f4f4f4} code,pre{font:12px ui-monospace,monospace} pre{white-space:pre-wrap;word-break:break-all;margin:0;max-height:220px;overflow:auto}
 .bad{color:#b00020;font-weight:600} .ok{color:#0a7d28} .muted{color:#777}
 .pill{display:inline-block;padding:0 6px;border-radius:8px;background:#eee;font-size:11px}
 button{font-size:12px;margin-right:4px}
</style></head>
<body>
<header><h1>wharf-sandbox inspector</h1><span id="cfg"></span><span id="updated"></span></header>
<main>
<section><h2>Installations</h2><div id="installations" class="muted">loading…</div></section>
<section><h2>Resources and project env vars</h2><div id="resources" class="muted">–</div></section>
<section><h2>Billing data and usage per day</h2><div id="billing" class="muted">–</div></section>
<section><h2>Invoices</h2><div id="invoices" class="muted">–</div></section>
<section><h2>Prepayment balances</h2><div id="balances" class="muted">–</div></section>
<section><h2>Events and webhooks</h2><div id="events" class="muted">–</div></section>
<section><h2>Exchange log</h2><div id="log" class="muted">–</div></section>
</main>
<script>
"use strict";
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) { if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v); }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? "" : String(k)));
  return e;
};
const table = (head, rows) => el("table", {}, el("tr", {}, ...head.map(h => el("th", {}, h))),
  ...rows.map(r => el("tr", {}, ...r.map(c => el("td", {}, c)))));
const pre = v => el("pre", {}, typeof v === "string" ? v : JSON.stringify(v, null, 2));
const fill = (id, ...kids) => { const n = document.getElementById(id); n.replaceChildren(...(kids.length ? kids : [el("span", {class: "muted"}, "none yet")])); };
const entries = o => Object.entries(o || {});
async function getJson(url) { const r = await fetch(url); return r.json(); }
async function setInvoice(icfg, id, state) {
  await fetch(`/_sandbox/invoices/${encodeURIComponent(icfg)}/${encodeURIComponent(id)}/state`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({state})});
  refresh();
}
async function refresh() {
  const [cfg, s, log] = await Promise.all([getJson("/_sandbox/config"), getJson("/_sandbox/state"), getJson("/_sandbox/log?limit=5000")]);
  document.getElementById("cfg").textContent = `partner ${cfg.partnerUrl} · client ${cfg.clientId} · issuer ${cfg.issuer}`;
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  fill("installations", ...(entries(s.installations).length ? [table(["id", "team", "status", "plan", "notification", "users", "created"],
    entries(s.installations).map(([id, i]) => [id, (i.account && i.account.name) || i.accountId, el("span", {class: "pill"}, i.status),
      (i.billingPlan && i.billingPlan.id) || "–", i.notification ? `${i.notification.level}: ${i.notification.title}` : "–",
      entries(i.users).map(([u, x]) => `${x.name || u} (${x.role})`).join(", "), i.createdAt || ""]))] : []));
  const res = [];
  for (const [icfg, rs] of entries(s.resources)) for (const [rid, r] of entries(rs)) {
    let env = {};
    try { env = await getJson(`/_sandbox/env/${encodeURIComponent(icfg)}/${encodeURIComponent(rid)}`); } catch (e) {}
    const envRows = [];
    for (const [target, vars] of entries(env)) if (vars && typeof vars === "object") for (const [k, v] of entries(vars)) envRows.push([target, k, v]);
    const sso = (role) => `/_sandbox/sso?installationId=${encodeURIComponent(icfg)}&resourceId=${encodeURIComponent(rid)}&role=${role}`;
    res.push(el("h3", {}, `${r.name || rid} — ${rid} (${r.productId || "?"}) in ${icfg} `,
        el("a", {href: sso("ADMIN"), target: "_blank"}, "Open in Provider"), " · ",
        el("a", {href: sso("USER"), target: "_blank"}, "as a viewer (USER)")),
      table(["status", "plan", "notification", "metadata", "ownership"], [[el("span", {class: "pill"}, r.status || "?"),
        (r.billingPlan && r.billingPlan.id) || r.billingPlanId || "–", r.notification ? `${r.notification.level}: ${r.notification.title}` : "–",
        pre(r.metadata || {}), r.ownership || "owned"]]),
      envRows.length ? table(["environment", "env var", "value"], envRows) : el("div", {class: "muted"}, "no env vars"));
    // A flag product's experimentation items and the Global Config it writes (vercel-api.md §9).
    const x = ((s.experimentation || {})[icfg] || {})[rid];
    if (x) {
      const items = entries(x.items);
      if (items.length) res.push(table(["experimentation item", "slug", "name", "category", "archived", "updated"],
        items.map(([id, i]) => [id, i.slug || "", i.name || "", i.category || "", i.isArchived ? "yes" : "no",
          i.updatedAt ? new Date(i.updatedAt).toISOString() : ""])));
      if (x.globalConfig) res.push(el("details", {}, el("summary", {}, `Global Config (digest ${x.globalConfig.digest || "?"})`),
        pre(x.globalConfig.items || {})));
    }
  }
  fill("resources", ...res);
  const bill = [];
  for (const [icfg, subs] of entries(s.billing)) {
    bill.push(el("h3", {}, icfg));
    bill.push(table(["day", "received", "period", "billing lines", "usage"], (subs || []).map(b => {
      const body = b.body || {}; const items = Array.isArray(body.billing) ? body.billing : ((body.billing || {}).items || []);
      return [b.day || "", b.receivedAt || "", body.period ? `${body.period.start} → ${body.period.end}` : "",
        items.map(i => `${i.name}: ${i.quantity} ${i.units} × ${i.price} = ${i.total}`).join("\n"),
        (body.usage || []).map(u => `${u.resourceId || "installation"} ${u.name}: day ${u.dayValue} / period ${u.periodValue}${u.planValue != null ? " / plan " + u.planValue : ""} ${u.units}`).join("\n")];
    })));
  }
  fill("billing", ...bill);
  const inv = [];
  for (const [icfg, invs] of entries(s.invoices)) for (const [id, i] of entries(invs))
    inv.push([icfg, id, i.externalId || "–", el("span", {class: "pill"}, i.state), i.total, i.test ? "test" : "", i.period ? `${i.period.start} → ${i.period.end}` : "",
      el("span", {}, ...["paid", "notpaid", "overdue"].map(st => el("button", {onclick: () => setInvoice(icfg, id, st)}, st)))]);
  fill("invoices", ...(inv.length ? [table(["installation", "invoice", "externalId", "state", "total", "", "period", "set state"], inv)] : []));
  const bal = [];
  for (const [icfg, b] of entries(s.balances)) for (const x of (b.balances || []))
    bal.push([icfg, x.resourceId || "installation", (x.currencyValueInCents / 100).toFixed(2) + " USD", x.credit || "", b.timestamp || ""]);
  fill("balances", ...(bal.length ? [table(["installation", "resource", "value", "credit", "reported"], bal)] : []));
  const ev = (s.events || []).map(e => ["event", e.receivedAt || "", e.installationId || "", JSON.stringify(e.event || {})])
    .concat((s.webhooks || []).map(w => ["webhook " + w.type, w.createdAt || "", w.status, `attempts ${w.attempts || 0}, last ${w.lastStatus || "–"}`]));
  fill("events", ...(ev.length ? [table(["kind", "at", "", "detail"], ev)] : []));
  const rows = (log.exchanges || []).slice().reverse().map(x => [x.id, new Date(x.at).toLocaleTimeString(), x.direction, x.flow || "",
    `${x.method} ${x.url}`, x.status || x.error || "", x.conformant ? el("span", {class: "ok"}, "ok") : el("span", {class: "bad"}, x.findings.join("\n")),
    el("details", {}, el("summary", {}, "bodies"), pre(x.requestBody || ""), pre(x.responseBody || ""))]);
  fill("log", ...(rows.length ? [table(["#", "time", "direction", "flow", "request", "status", "conformance", ""], rows)] : []));
}
refresh().catch(e => fill("installations", el("span", {class: "bad"}, "cannot load: " + e)));
setInterval(() => refresh().catch(() => {}), 3000);
</script>
</body></html>
)html";

}  // namespace

std::string inspector_html(const Context&) {
  return kPage;
}

}  // namespace wharf::sandbox
