"""Billing against the real sandbox, with Vercel's clock and ours moved together: a month
of usage → billing data Vercel accepts for every day → one invoice per resource at the
period end → paid; overdue → suspended → paid → resumed; refunds from the admin command;
uninstall → final invoice → Finalize Installation → token gone."""
import pytest
import requests

from lib import api
from lib.billing import (DAY, HOUR, advance, billing_show, next_month_start, outbox,
                         sandbox_billing_days, sandbox_invoices, set_both, set_invoice_state,
                         start_billing_pair, wait_until, wharf_cli)
from lib.sandbox import sandbox_clock
from test_resources import db_files, provision, q, secrets_of


@pytest.fixture(scope="module")
def bpair(tmp_path_factory, wharf_bin):
    sb, w = start_billing_pair(tmp_path_factory.mktemp("billing"), wharf_bin)
    yield sb, w
    w.stop()
    sb.stop()


def start_of_next_month(sb, w):
    """Both clocks at 00:30 on the first day of the next month: a fresh billing period."""
    t = next_month_start(sandbox_clock(sb)["nowMs"] + DAY) + 30 * 60 * 1000
    set_both(sb, w, t)
    return t


def write_rows(secrets, n, table="t"):
    r = q(secrets, {"statements": [
        {"sql": f"create table if not exists {table}(x)"},
        {"sql": f"insert into {table} with recursive c(x) as (select 1 union all select x + 1 "
                f"from c where x < {n}) select x from c"}]})
    assert r.status_code == 200, r.text


def test_a_month_of_usage_billed_hourly_then_invoiced_and_paid(bpair):
    sb, w = bpair
    t0 = start_of_next_month(sb, w)
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    pro = provision(sb, iid, name="pro", plan="sqlite-pro")
    free = provision(sb, iid, name="free", plan="sqlite-free")
    s = secrets_of(pro)
    period_end = next_month_start(t0)
    day = 0
    now = t0
    while now + 6 * HOUR < period_end + 2 * HOUR:
        if (now - t0) % DAY < 6 * HOUR and day % 3 == 0:
            write_rows(s, 2000)
            assert q(s, {"sql": "select count(*) from t"}).status_code == 200
        advance(sb, w, 6 * HOUR)
        now += 6 * HOUR
        if (now - t0) % DAY < 6 * HOUR:
            day += 1

    # Billing data: Vercel holds data for every day of the period, all accepted.
    days = {e["day"] for e in sandbox_billing_days(sb, iid)}
    month = api_month(t0)
    in_month = sorted(d for d in days if d.startswith(month))
    assert len(in_month) >= 28, in_month
    assert outbox(w, "dead") == [] or all(d["installationId"] != iid for d in outbox(w, "dead"))
    last = [e for e in sandbox_billing_days(sb, iid) if e["day"] == in_month[-1]][0]["body"]
    usage = {(u.get("resourceId"), u["name"]): u for u in last["usage"]}
    assert usage[(pro["id"], "rowsWritten")]["periodValue"] >= 2000 * 10
    assert usage[(pro["id"], "storageBytes")]["planValue"] == 10737418240
    assert usage[(None, "rowsWritten")]["periodValue"] == usage[(pro["id"], "rowsWritten")]["periodValue"]

    # One invoice, for the paid resource only, with a deterministic externalId.
    invoices = list(sandbox_invoices(sb, iid).values())
    assert len(invoices) == 1, invoices
    inv = invoices[0]
    assert inv["externalId"] == f"whf_{pro['id']}_sqlite-pro_{month}"
    assert inv["state"] == "scheduled"
    names = {i["name"]: i for i in inv["items"]}
    # Provisioned 30 minutes into the month: the fee is prorated from then (start/end set).
    fee = names["Pro plan"]
    assert fee["total"] == "5.00" and 0.999 < fee["quantity"] < 1 and fee["start"] and fee["end"]
    # 11 days × 2000 rows at $1.00 per million: a line of its own (zero lines are left out).
    assert names["rowsWritten"]["quantity"] >= 0.022 and names["rowsWritten"]["units"] == "million rows"
    assert names["rowsWritten"]["total"] == "0.02"
    assert all(i["resourceId"] == pro["id"] for i in inv["items"])
    total = sum(int(i["total"].replace(".", "")) for i in inv["items"])
    assert inv["total"] == f"{total // 100}.{total % 100:02d}"
    ours = billing_show(w, iid)
    assert [i["id"] for i in ours["invoices"]] == [inv["externalId"]]
    assert ours["invoices"][0]["invoiceId"] == inv["invoiceId"]
    assert free["id"] not in str(inv["items"])

    # Vercel collects: the paid webhook lands in our record.
    set_invoice_state(sb, iid, inv["invoiceId"], "paid")
    wait_until(lambda: billing_show(w, iid)["invoices"][0]["state"] == "paid", what="paid")


def api_month(ms):
    from lib.billing import iso_of
    return iso_of(ms)[:7]


def test_overdue_suspends_and_paid_resumes(bpair):
    sb, w = bpair
    t0 = start_of_next_month(sb, w)
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    pro = provision(sb, iid, name="pro", plan="sqlite-pro")
    s = secrets_of(pro)
    write_rows(s, 10)
    advance(sb, w, next_month_start(t0) - t0 + HOUR)
    inv = list(sandbox_invoices(sb, iid).values())[0]
    set_invoice_state(sb, iid, inv["invoiceId"], "notpaid")
    wait_until(lambda: billing_show(w, iid)["invoices"][0]["state"] == "notpaid")
    token = requests.post(sb.base + "/_sandbox/tokens", timeout=10,
                          json={"kind": "system", "installationId": iid}).json()["token"]
    got = w.get(f"/v1/installations/{iid}/resources/{pro['id']}", token).json()
    assert got["notification"]["level"] == "warn" and got["status"] == "ready"
    assert q(s, {"sql": "select 1"}).status_code == 200  # notpaid degrades nothing

    set_invoice_state(sb, iid, inv["invoiceId"], "overdue")
    wait_until(lambda: billing_show(w, iid)["invoices"][0].get("suspendedResources"))
    got = w.get(f"/v1/installations/{iid}/resources/{pro['id']}", token).json()
    assert got["status"] == "suspended" and got["notification"]["level"] == "error"
    # The link signs the user in through Vercel and lands on the invoice in the dashboard.
    assert got["notification"]["href"] == \
        f"sso:{w.url('')}/dashboard/billing?invoice={inv['invoiceId']}", got
    r = q(s, {"sql": "select 1"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "resource_suspended"

    set_invoice_state(sb, iid, inv["invoiceId"], "paid")
    wait_until(lambda: billing_show(w, iid)["invoices"][0]["state"] == "paid")
    got = w.get(f"/v1/installations/{iid}/resources/{pro['id']}", token).json()
    assert got["status"] == "ready" and "notification" not in got
    assert q(s, {"sql": "select count(*) from t"}).status_code == 200
    # Vercel was told each time (resource.updated events).
    def events():
        return [e for e in sb.state().get("events", [])
                if e["installationId"] == iid and e["event"].get("resourceId") == pro["id"]]
    wait_until(lambda: len(events()) >= 3, what=f"resource.updated events ({outbox(w, 'dead')})")

    # Refund from the admin command: queued to Invoice Actions, then Vercel refunds.
    r = wharf_cli(w, "billing", "refund", "--installation", iid, "--invoice", inv["externalId"],
                  "--total", "1.00", "--reason", "service credit")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: sandbox_invoices(sb, iid)[inv["invoiceId"]]["state"] == "refund_requested")
    set_invoice_state(sb, iid, inv["invoiceId"], "refunded")
    wait_until(lambda: billing_show(w, iid)["invoices"][0]["state"] == "refunded")
    again = wharf_cli(w, "billing", "refund", "--installation", iid, "--invoice",
                      inv["externalId"], "--total", "1.00", "--reason", "twice")
    assert again.returncode != 0 and "refunded" in again.stderr


def test_small_amounts_are_carried_not_invoiced(bpair):
    sb, w = bpair
    t0 = start_of_next_month(sb, w)
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    pro = provision(sb, iid, name="pro", plan="sqlite-pro")
    # Two hours on the plan cost 5.00 × 2/744 ≈ 0.01: under $0.50.
    advance(sb, w, 2 * HOUR)
    sb.run("update-resource", installationId=iid, resourceId=pro["id"], billingPlanId="sqlite-free")
    advance(sb, w, next_month_start(t0) - t0)
    ours = billing_show(w, iid)["invoices"]
    assert len(ours) == 1 and ours[0]["state"] == "carried", ours
    assert sandbox_invoices(sb, iid) == {}
    item = ours[0]["items"][0]
    assert item["start"] and item["end"] and item["quantity"] < 0.01


def test_uninstall_sends_the_final_invoice_then_finalizes(bpair):
    sb, w = bpair
    start_of_next_month(sb, w)
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    pro = provision(sb, iid, name="pro", plan="sqlite-pro")
    advance(sb, w, 10 * DAY)
    # Without cascade the database stays until billing is done, then it is deprovisioned.
    gone = sb.run("uninstall", installationId=iid, cascadeResourceDeletion=False, webhook=False)
    assert gone["response"] == {"finalized": False}, gone
    advance(sb, w, HOUR)
    invoices = list(sandbox_invoices(sb, iid).values())
    assert len(invoices) == 1 and invoices[0]["final"] is True, invoices
    assert invoices[0]["items"][0]["end"]  # prorated to the uninstall
    ours = billing_show(w, iid)
    assert ours["billing"]["finalSubmitted"] and not ours["billing"]["finalizeEnqueued"]
    assert db_files(w, pro["id"])  # kept while the final invoice is open
    set_invoice_state(sb, iid, invoices[0]["invoiceId"], "paid")
    wait_until(lambda: billing_show(w, iid)["invoices"][0]["state"] == "paid")
    advance(sb, w, HOUR)
    wait_until(lambda: billing_show(w, iid)["finalized"], what="finalized")
    assert sb.state()["installations"][iid]["status"] == "finalized"
    wait_until(lambda: not db_files(w, pro["id"]), what="leftover database deprovisioned")
    assert q(secrets_of(pro), {"sql": "select 1"}).status_code in (401, 404)
    # Finalized: the access token is gone, nothing more is sent.
    assert wharf_cli(w, "outbox", "--state", "pending").stdout.count(iid) == 0


def test_free_installation_finalizes_at_once(bpair):
    sb, w = bpair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    free = provision(sb, iid, name="free", plan="sqlite-free")
    gone = sb.run("uninstall", installationId=iid, cascadeResourceDeletion=False, webhook=False)
    assert gone["response"] == {"finalized": True}, gone
    assert billing_show(w, iid)["finalized"] is True
    assert not db_files(w, free["id"])  # nothing to bill: deprovisioned at once
