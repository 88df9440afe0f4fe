"""A plan's `initialCharge` (partner-api.md BillingPlan; flows.md F3 step 6, F10 step 5)
invoiced through the real wharf-sandbox when a resource or the installation takes the plan:
once per resource and plan, below $0.50 waived, free plans never."""
import pytest

from lib import api
from lib.billing import billing_show, sandbox_invoices, start_billing_pair, wait_until

CATALOG = {
    "products": [{"id": "sqlite-db", "kind": "sqlite", "name": "DB",
                  "plans": ["free", "pro", "max", "team-free", "team-pro"]}],
    "plans": [
        {"id": "free", "type": "subscription", "name": "Free", "description": "d",
         "paymentMethodRequired": False},
        {"id": "pro", "type": "subscription", "name": "Pro", "description": "d",
         "cost": "$10.00/month", "initialCharge": "25.00", "pricing": {"baseFee": "10.00"}},
        {"id": "max", "type": "subscription", "name": "Max", "description": "d",
         "cost": "$30.00/month", "initialCharge": "0.40", "pricing": {"baseFee": "30.00"}},
        {"id": "team-free", "type": "subscription", "name": "Team free", "description": "d",
         "scope": "installation", "paymentMethodRequired": False},
        {"id": "team-pro", "type": "subscription", "name": "Team pro", "description": "d",
         "scope": "installation", "cost": "$20.00/month", "initialCharge": "15.00",
         "pricing": {"baseFee": "20.00"}},
    ],
}


@pytest.fixture(scope="module")
def pair(wharf_bin, tmp_path_factory):
    sb, w = start_billing_pair(tmp_path_factory.mktemp("signup"), wharf_bin, CATALOG)
    yield sb, w
    w.stop()
    sb.stop()


def by_external(sb, iid):
    return {i["externalId"]: i for i in sandbox_invoices(sb, iid).values()}


def test_initial_charge_is_invoiced_once_when_a_plan_is_taken(pair):
    sb, w = pair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    free = sb.run("provision", installationId=iid, productId="sqlite-db", name="f",
                  billingPlanId="free")["response"]
    pro = sb.run("provision", installationId=iid, productId="sqlite-db", name="p",
                 billingPlanId="pro")["response"]
    signup = f"whf_{pro['id']}_pro_signup"
    wait_until(lambda: signup in by_external(sb, iid), timeout=30, what="the sign-up invoice")
    inv = by_external(sb, iid)[signup]
    assert inv["total"] == "25.00", inv
    assert [i["resourceId"] for i in inv["items"]] == [pro["id"]], inv
    assert inv["items"][0]["total"] == "25.00"

    # A plan change to a plan with an initial charge under $0.50: recorded, waived, not sent.
    ch = sb.run("change-plan", installationId=iid, resourceId=free["id"], billingPlanId="max")
    assert ch["ok"], ch
    wait_until(lambda: any(i["id"] == f"whf_{free['id']}_max_signup"
                           for i in billing_show(w, iid)["invoices"]), what="waived record")
    waived = [i for i in billing_show(w, iid)["invoices"]
              if i["id"] == f"whf_{free['id']}_max_signup"][0]
    assert waived["state"] == "waived", waived
    # Back to Pro and again Max: no second sign-up charge for a plan already taken.
    assert sb.run("change-plan", installationId=iid, resourceId=pro["id"], billingPlanId="max")["ok"]
    assert sb.run("change-plan", installationId=iid, resourceId=pro["id"], billingPlanId="pro")["ok"]
    wait_until(lambda: f"whf_{pro['id']}_max_signup" in
               [i["id"] for i in billing_show(w, iid)["invoices"]], what="max record")
    assert [k for k in by_external(sb, iid) if k.endswith("_signup")] == [signup]

    # The installation taking an installation-scope plan with an initial charge.
    assert sb.run("change-plan", installationId=iid, billingPlanId="team-pro")["ok"]
    team = f"whf_installation_team-pro_signup"
    wait_until(lambda: team in by_external(sb, iid), timeout=30, what="installation sign-up")
    assert by_external(sb, iid)[team]["total"] == "15.00"
    assert by_external(sb, iid)[team]["items"][0].get("resourceId") in (None, "")
