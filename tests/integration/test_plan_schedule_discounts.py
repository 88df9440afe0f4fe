"""A plan's `effectiveDate` schedules a plan change (flows.md F13 step 5) and a plan's catalog
`discount` comes off billing data and invoices (vercel-api.md §2.7), through the real
wharf-sandbox with both clocks moved together: the old plan stays (and is billed) until the
effective date, the new one from it, each invoiced once for its part of the period; the
discount is accepted by the sandbox's validation of Submit Billing Data and Submit Invoice."""
import pytest

from lib import api
from lib.billing import (DAY, HOUR, advance, billing_show, iso_of, ms_of, next_month_start,
                         sandbox_billing_days, sandbox_invoices, set_both, start_billing_pair)
from lib.sandbox import sandbox_clock
from test_resources import provision

# Both clocks start here (forward of any real clock the tests run on), so the catalog can
# name a fixed effective date that lies ahead.
T0 = ms_of("2029-03-01T00:30:00Z")
EFFECTIVE = "2029-03-11T00:00:00Z"

CATALOG = {
    "products": [{"id": "sqlite-db", "kind": "sqlite", "name": "DB",
                  "plans": ["std", "next", "promo", "team-free", "team-next"]}],
    "plans": [
        {"id": "std", "type": "subscription", "name": "Standard", "description": "d",
         "cost": "$31.00/month", "pricing": {"baseFee": "31.00"}},
        {"id": "next", "type": "subscription", "name": "Next", "description": "d",
         "cost": "$62.00/month", "effectiveDate": EFFECTIVE, "pricing": {"baseFee": "62.00"}},
        {"id": "promo", "type": "subscription", "name": "Promo", "description": "d",
         "cost": "$10.00/month", "pricing": {"baseFee": "10.00"},
         "discount": {"name": "Launch offer", "details": "20% off the first month",
                      "percent": 20, "periods": 1}},
        {"id": "team-free", "type": "subscription", "name": "Team free", "description": "d",
         "scope": "installation", "paymentMethodRequired": False, "default": True},
        {"id": "team-next", "type": "subscription", "name": "Team next", "description": "d",
         "scope": "installation", "effectiveDate": EFFECTIVE, "pricing": {"baseFee": "31.00"}},
    ],
}


@pytest.fixture(scope="module")
def pair(wharf_bin, tmp_path_factory):
    sb, w = start_billing_pair(tmp_path_factory.mktemp("schedule"), wharf_bin, CATALOG)
    set_both(sb, w, T0)
    yield sb, w
    w.stop()
    sb.stop()


def by_external(sb, iid):
    return {i["externalId"]: i for i in sandbox_invoices(sb, iid).values()}


def cents(s):
    whole, frac = s.split(".")
    return int(whole) * 100 + int(frac)


def test_a_scheduled_plan_change_bills_the_old_plan_then_the_new_one(pair):
    sb, w = pair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    r = provision(sb, iid, name="sched", plan="std")
    advance(sb, w, 2 * DAY)

    # Asked for Next (effective 2029-03-11): the answer keeps Standard and says when.
    ch = sb.run("change-plan", installationId=iid, resourceId=r["id"], billingPlanId="next")
    assert ch["ok"], ch
    got = ch["response"]
    assert got["billingPlan"]["id"] == "std", got
    assert got["notification"]["title"] == "Plan change scheduled", got
    assert "2029-03-11T00:00:00.000Z" in got["notification"]["message"], got
    # The installation's plan too (installation scope): scheduled, the current one kept.
    inst = sb.run("change-plan", installationId=iid, billingPlanId="team-next")
    assert inst["ok"] and inst["response"]["billingPlan"]["id"] == "team-free", inst
    assert inst["response"]["notification"]["title"] == "Plan change scheduled", inst

    # Days pass up to the effective date: still Standard.
    now = T0 + 2 * DAY
    while now + DAY < ms_of(EFFECTIVE):
        advance(sb, w, DAY)
        now += DAY
    assert sb.run("get-resource", installationId=iid,
                  resourceId=r["id"])["response"]["billingPlan"]["id"] == "std"
    # Past it, the first billing pass makes the change.
    advance(sb, w, DAY)
    now += DAY
    res = sb.run("get-resource", installationId=iid, resourceId=r["id"])["response"]
    assert res["billingPlan"]["id"] == "next", res
    assert "notification" not in res or res["notification"] is None or \
        res["notification"].get("title") != "Plan change scheduled", res
    assert sb.run("get-installation", installationId=iid)["response"]["billingPlan"]["id"] == \
        "team-next"

    # To the period's end: each plan invoiced once, for the days it was active.
    while now < ms_of("2029-04-01T00:00:00Z") + HOUR:
        advance(sb, w, DAY)
        now += DAY
    invoices = by_external(sb, iid)
    old = invoices[f"whf_{r['id']}_std_2029-03"]
    new = invoices[f"whf_{r['id']}_next_2029-03"]
    team = invoices["whf_installation_team-next_2029-03"]
    fee = old["items"][0]
    # (The clocks run on between moves: provisioned a few ms after 00:30.)
    assert fee["end"] == "2029-03-11T00:00:00.000Z", fee
    assert fee["start"].startswith("2029-03-01T00:30:0"), fee
    # 31.00 from 00:30 on the 1st to the 11th: 10 days less 30 minutes of a 31-day month.
    assert old["total"] == "9.98", old
    assert new["items"][0]["start"] == "2029-03-11T00:00:00.000Z", new
    assert new["items"][0]["end"] == "2029-04-01T00:00:00.000Z", new
    assert new["total"] == "42.00", new  # 21 days of 62.00
    assert team["items"][0]["start"] == "2029-03-11T00:00:00.000Z", team
    assert team["total"] == "21.00", team
    assert sorted(k for k in invoices if k.endswith("2029-03")) == sorted(
        [f"whf_{r['id']}_std_2029-03", f"whf_{r['id']}_next_2029-03",
         "whf_installation_team-next_2029-03"])
    ours = {i["id"]: i for i in billing_show(w, iid)["invoices"]}
    assert ours[f"whf_{r['id']}_next_2029-03"]["total"] == "42.00"


def test_a_catalog_discount_is_sent_with_billing_data_and_the_invoice(pair):
    sb, w = pair
    iid = api.new_installation_id()
    started = sandbox_clock(sb)["nowMs"]  # wherever the test before left the clocks
    sb.run("install", installationId=iid)
    r = provision(sb, iid, name="promo", plan="promo")
    advance(sb, w, HOUR)
    now = started + HOUR
    # Interim billing data in the {items, discounts} form, accepted by the sandbox.
    days = sandbox_billing_days(sb, iid)
    assert days, "no billing data"
    billing = days[-1]["body"]["billing"]
    assert isinstance(billing, dict) and billing["discounts"], billing
    d = billing["discounts"][0]
    assert d["billingPlanId"] == "promo" and d["resourceId"] == r["id"], d
    assert d["name"] == "Launch offer" and d["details"] == "20% off the first month", d
    items = sum(cents(i["total"]) for i in billing["items"])
    assert 0 < cents(d["amount"]) <= items, billing

    # The month ends: one invoice, its discount 20% of the items, accepted by the sandbox.
    month = iso_of(now)[:7]
    while now < next_month_start(started) + HOUR:
        advance(sb, w, 2 * DAY)
        now += 2 * DAY
    invoice_id = f"whf_{r['id']}_promo_{month}"
    inv = by_external(sb, iid).get(invoice_id)
    assert inv, by_external(sb, iid)
    items = sum(cents(i["total"]) for i in inv["items"])
    off = inv["discounts"][0]
    assert cents(off["amount"]) == round(items / 5), inv
    assert cents(inv["total"]) == items - cents(off["amount"]), inv
    ours = {i["id"]: i for i in billing_show(w, iid)["invoices"]}
    assert ours[invoice_id]["total"] == inv["total"]
