"""Installation-level state reaching Vercel (vercel-api.md §4.1) through the real
wharf-sandbox: for an installation-level invoice (an installation-scope plan), a failed
payment puts a notice on the installation, overdue shows it suspended, paid resumes it and
clears the notice — each sent with Update Installation, and returned by Get Installation.
With WHARF_NOTICE_URL, each notice also reaches the team's contact (from Get Account
Information) through the provider's endpoint, signed."""
import hashlib
import hmac
import http.server
import json
import threading

import requests

import pytest

from lib import api, catalog
from lib.billing import (HOUR, advance, billing_show, next_month_start, set_invoice_state,
                         start_billing_pair, sandbox_invoices, wait_until)
from test_billing import start_of_next_month

CATALOG = catalog.TEAM_PLANS


NOTICE_SECRET = "n" * 40


class NoticeSink:
    """The provider's notice endpoint: records each POST with its headers."""

    def __init__(self, status=200):
        self.received = []
        self.status = status
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                sink.received.append((dict(self.headers), body))
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/notices"

    def notices(self):
        return [json.loads(b) for _, b in self.received]


@pytest.fixture(scope="module")
def sink():
    s = NoticeSink()
    yield s
    s.server.shutdown()


@pytest.fixture(scope="module")
def pair(wharf_bin, tmp_path_factory, sink):
    sb, w = start_billing_pair(tmp_path_factory.mktemp("inststate"), wharf_bin, CATALOG,
                               WHARF_NOTICE_URL=sink.url, WHARF_NOTICE_SECRET=NOTICE_SECRET)
    yield sb, w
    w.stop()
    sb.stop()


def test_payment_states_of_an_installation_level_invoice(pair, sink):
    sb, w = pair
    t0 = start_of_next_month(sb, w)
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    assert sb.run("change-plan", installationId=iid, billingPlanId="team-pro")["ok"]
    advance(sb, w, next_month_start(t0) - t0 + HOUR)
    invoices = list(sandbox_invoices(sb, iid).values())
    assert len(invoices) == 1, invoices
    inv = invoices[0]
    token = requests.post(sb.base + "/_sandbox/tokens", timeout=10,
                          json={"kind": "system", "installationId": iid}).json()["token"]

    def ours():
        r = w.get(f"/v1/installations/{iid}", token)
        assert r.status_code == 200, r.text
        return r.json()

    def vercel():
        return sb.state()["installations"][iid]

    assert ours().get("notification") is None
    set_invoice_state(sb, iid, inv["invoiceId"], "notpaid")
    wait_until(lambda: (ours().get("notification") or {}).get("level") == "warn", what="notice")
    wait_until(lambda: (vercel().get("notification") or {}).get("title") == "Payment failed",
               what="Update Installation with the notice")
    assert "partnerStatus" not in vercel()

    set_invoice_state(sb, iid, inv["invoiceId"], "overdue")
    wait_until(lambda: (ours().get("notification") or {}).get("level") == "error", what="overdue")
    wait_until(lambda: vercel().get("partnerStatus") == "suspended", what="shown suspended")
    n = ours()["notification"]
    assert n["title"] == "Payment overdue"
    assert n["href"] == f"sso:{w.url('')}/dashboard/billing?invoice={inv['invoiceId']}", n
    assert vercel()["notification"]["level"] == "error"

    # The team's contact heard of both, through the provider's endpoint, signed.
    contact = sb.state()["installations"][iid].get("account", {}).get("contact")
    mine = wait_until(lambda: [n for n in sink.notices() if n["installationId"] == iid
                               and n["title"] == "Payment overdue"] and
                      [n for n in sink.notices() if n["installationId"] == iid],
                      what="notices delivered")
    assert [n["title"] for n in mine] == ["Payment failed", "Payment overdue"], mine
    assert mine[1]["status"] == "suspended" and mine[1]["level"] == "error"
    assert mine[0]["contact"] and mine[0]["contact"]["email"], mine[0]
    if contact:
        assert mine[0]["contact"]["email"] == contact["email"]
    for headers, body in sink.received:
        if json.loads(body)["installationId"] != iid:
            continue
        t, v1 = (p.split("=", 1)[1] for p in headers["Wharf-Signature"].split(","))
        assert hmac.compare_digest(
            v1, hmac.new(NOTICE_SECRET.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest())
        assert headers["Idempotency-Key"] == json.loads(body)["id"]

    set_invoice_state(sb, iid, inv["invoiceId"], "paid")
    wait_until(lambda: billing_show(w, iid)["invoices"][0]["state"] == "paid")
    wait_until(lambda: ours().get("notification") is None, what="notice cleared")
    wait_until(lambda: vercel().get("partnerStatus") == "resumed" and
               vercel().get("notification") is None, what="shown resumed, notice cleared at Vercel")
