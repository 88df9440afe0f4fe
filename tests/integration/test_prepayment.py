"""Prepaid credits through the real sandbox: Provision Purchase verified with Vercel's Get
Invoice and credited once (repeats and concurrent retries included), usage debited at the
plan's prices, balances reported to Vercel, reads-only at zero until credited again.
Also installation-level plans billed without a resourceId."""
import threading

import pytest
import requests

from lib import api
from lib.billing import (DAY, HOUR, advance, billing_show, next_month_start, sandbox_invoices,
                         set_both, start_billing_pair)
from lib.sandbox import add_faults, sandbox_clock
from test_resources import q, secrets_of

CATALOG = {
    "products": [{"id": "credits-db", "kind": "sqlite", "name": "Credits DB",
                  "plans": ["cred", "team-pro", "team-free"]}],
    "plans": [
        {"id": "cred", "type": "prepayment", "name": "Credits", "description": "Prepaid",
         "scope": "resource", "minimumAmount": "1.00", "maximumAmount": "100.00",
         "pricing": {"baseFee": "0.00",
                     "metrics": {"rowsWritten": {"unit": "thousand rows", "unitPrice": "1.00",
                                                 "per": 1000}}}},
        {"id": "team-pro", "type": "subscription", "name": "Team Pro", "description": "Paid",
         "scope": "installation", "paymentMethodRequired": True, "cost": "$20.00/month",
         "pricing": {"baseFee": "20.00", "metrics": {}}},
        {"id": "team-free", "type": "subscription", "name": "Team Free", "description": "Free",
         "scope": "installation", "paymentMethodRequired": False, "default": True},
    ],
}


@pytest.fixture(scope="module")
def ppair(tmp_path_factory, wharf_bin):
    sb, w = start_billing_pair(tmp_path_factory.mktemp("prepay"), wharf_bin, catalog=CATALOG)
    yield sb, w
    w.stop()
    sb.stop()


def token(sb, iid, kind="system"):
    body = {"kind": kind, "installationId": iid}
    if kind == "user":
        body["role"] = "ADMIN"
    return requests.post(sb.base + "/_sandbox/tokens", json=body, timeout=10).json()["token"]


def provision_cred(sb, iid):
    res = sb.run("provision", installationId=iid, productId="credits-db", name="c",
                 billingPlanId="cred")
    assert res["ok"], res
    return res["response"]


def balance_of(body, rid):
    return [b for b in body["balances"] if b.get("resourceId") == rid][0]["currencyValueInCents"]


def write(s, n):
    return q(s, {"statements": [
        {"sql": "create table if not exists t(x)"},
        {"sql": f"insert into t with recursive c(x) as (select 1 union all select x + 1 from c "
                f"where x < {n}) select x from c"}]})


def test_purchase_is_verified_credited_once_and_debited(ppair):
    sb, w = ppair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    res = provision_cred(sb, iid)
    rid, s = res["id"], secrets_of(res)

    bought = sb.run("purchase", installationId=iid, resourceId=rid, amount="2.00")
    assert bought["ok"] and bought["findings"] == [], bought
    assert balance_of(bought["response"], rid) == 200
    invoice_id = bought["invoiceId"]

    # Vercel retries the same purchase — in sequence and concurrently: credited once.
    tok = token(sb, iid)
    path = f"/v1/installations/{iid}/billing/provision"
    again = w.request("POST", path, tok, json_body={"invoiceId": invoice_id})
    assert again.status_code == 200 and balance_of(again.json(), rid) == 200, again.text
    answers = []

    def buy():
        answers.append(w.request("POST", path, tok, json_body={"invoiceId": invoice_id}))
    threads = [threading.Thread(target=buy) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * 6
    assert {balance_of(a.json(), rid) for a in answers} == {200}
    assert billing_show(w, iid)["balances"] == [
        {"resourceId": rid, "currencyValueInCents": 200, "credit": "$2.00", "nameLabel": "USD credit"}]

    # A purchase Vercel has not been paid for is refused and credits nothing.
    unpaid = sb.run("purchase", installationId=iid, resourceId=rid, amount="3.00")
    r = sb.state()["invoices"][iid][unpaid["invoiceId"]]
    assert r["state"] == "paid"  # the sandbox's purchases are paid; make one that is not:
    requests.post(f"{sb.base}/_sandbox/invoices/{iid}/{unpaid['invoiceId']}/state",
                  json={"state": "notpaid"}, timeout=10)
    bad = w.request("POST", path, tok, json_body={"invoiceId": "mi_doesnotexist"})
    assert bad.status_code == 422 and "does not exist" in bad.json()["error"]["message"]
    assert "no credits were added" in bad.json()["error"]["user"]["message"], bad.text
    bad = w.request("POST", path, tok, json_body={"invoiceId": "../x"})
    assert bad.status_code == 400

    # 1,500 rows at $1.00 per thousand: $1.50 of the $5.00 (2.00 + 3.00) is used.
    assert write(s, 1500).status_code == 200
    advance(sb, w, HOUR)
    show = billing_show(w, iid)
    assert show["balances"][0]["currencyValueInCents"] == 350, show
    assert sb.state()["balances"][iid]["balances"][0]["currencyValueInCents"] == 350

    # Used up: an error notification, reads only, until credits are bought.
    assert write(s, 4000).status_code == 200
    advance(sb, w, HOUR)
    r = write(s, 1)
    assert r.status_code == 402 and r.json()["error"]["code"] == "credits_exhausted", r.text
    assert "Buy more credits" in r.json()["error"]["user"]["message"], r.text
    assert q(s, {"sql": "select count(*) from t"}).status_code == 200
    got = w.get(f"/v1/installations/{iid}/resources/{rid}", token(sb, iid)).json()
    assert got["notification"]["level"] == "error"
    assert sb.state()["balances"][iid]["balances"][0]["currencyValueInCents"] == 0
    more = sb.run("purchase", installationId=iid, resourceId=rid, amount="10.00")
    # $5.50 used of $5.00: the $0.50 overdraft is paid off by the new credits.
    assert balance_of(more["response"], rid) == 950
    assert write(s, 1).status_code == 200
    got = w.get(f"/v1/installations/{iid}/resources/{rid}", token(sb, iid)).json()
    assert "notification" not in got


def test_installation_level_plan_is_invoiced_without_resource(ppair):
    sb, w = ppair
    t0 = next_month_start(sandbox_clock(sb)["nowMs"] + DAY)
    set_both(sb, w, t0)
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    # Provisioning with an installation-scope plan moves the installation to it; Vercel is told.
    res = sb.run("provision", installationId=iid, productId="credits-db", name="team",
                 billingPlanId="team-pro")
    assert res["ok"], res
    advance(sb, w, HOUR)
    events = [e["event"] for e in sb.state().get("events", []) if e["installationId"] == iid]
    assert {"type": "installation.updated", "billingPlanId": "team-pro"} in events, events
    advance(sb, w, next_month_start(t0) - t0)
    invoices = list(sandbox_invoices(sb, iid).values())
    assert len(invoices) == 1, invoices
    inv = invoices[0]
    assert inv["externalId"].startswith("whf_installation_team-pro_")
    assert inv["total"] == "20.00" and "resourceId" not in inv["items"][0]


def test_unpaid_or_unconfirmed_purchases_credit_nothing_and_say_why(ppair):
    sb, w = ppair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    rid = provision_cred(sb, iid)["id"]
    # An invoice Vercel has not been paid for yet (live, scheduled: not paid).
    vercel_token = sb.state()["installations"][iid]["accessTokens"][-1]
    now = sandbox_clock(sb)["now"]
    inv = requests.post(
        f"{sb.base}/v1/installations/{iid}/billing/invoices",
        headers={"Authorization": f"Bearer {vercel_token}"}, timeout=10,
        json={"externalId": f"unpaid-{rid}", "invoiceDate": now,
              "period": {"start": now, "end": now},
              "items": [{"billingPlanId": "cred", "resourceId": rid, "name": "Credits",
                         "price": "5.00", "quantity": 1, "units": "credit",
                         "total": "5.00"}]})
    assert inv.status_code == 200, inv.text
    invoice_id = inv.json()["invoiceId"]
    assert sb.state()["invoices"][iid][invoice_id]["state"] != "paid"
    path = f"/v1/installations/{iid}/billing/provision"
    r = w.request("POST", path, token(sb, iid), json_body={"invoiceId": invoice_id})
    assert r.status_code == 422, r.text
    assert "not paid" in r.json()["error"]["message"]
    assert "has not been paid yet" in r.json()["error"]["user"]["message"], r.text
    # Vercel unreachable while the purchase is checked: 503, a user message, nothing credited.
    add_faults(sb, {"method": "GET", "pathContains": f"/billing/invoices/{invoice_id}",
                    "status": 503, "count": 1})
    r = w.request("POST", path, token(sb, iid), json_body={"invoiceId": invoice_id})
    assert r.status_code == 503, r.text
    assert "not charged twice" in r.json()["error"]["user"]["message"], r.text
    assert [b["currencyValueInCents"] for b in billing_show(w, iid)["balances"]] in ([], [0])
