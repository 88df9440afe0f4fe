"""Installation-level state reaching Vercel (vercel-api.md §4.1) through the real
wharf-sandbox: for an installation-level invoice (an installation-scope plan), a failed
payment puts a notice on the installation, overdue shows it suspended, paid resumes it and
clears the notice — each sent with Update Installation, and returned by Get Installation."""
import requests

import pytest

from lib import api, catalog
from lib.billing import (HOUR, advance, billing_show, next_month_start, set_invoice_state,
                         start_billing_pair, sandbox_invoices, wait_until)
from test_billing import start_of_next_month

CATALOG = catalog.TEAM_PLANS


@pytest.fixture(scope="module")
def pair(wharf_bin, tmp_path_factory):
    sb, w = start_billing_pair(tmp_path_factory.mktemp("inststate"), wharf_bin, CATALOG)
    yield sb, w
    w.stop()
    sb.stop()


def test_payment_states_of_an_installation_level_invoice(pair):
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

    set_invoice_state(sb, iid, inv["invoiceId"], "paid")
    wait_until(lambda: billing_show(w, iid)["invoices"][0]["state"] == "paid")
    wait_until(lambda: ours().get("notification") is None, what="notice cleared")
    wait_until(lambda: vercel().get("partnerStatus") == "resumed" and
               vercel().get("notification") is None, what="shown resumed, notice cleared at Vercel")
