"""Plans and resources as the spec defines them, through a real wharf-sandbox: `maxResources`
(a catalog plan limit) at Provision Resource and at a plan change, Update Resource's
documented statuses, an installation-scope billingPlanId reaching the installation, the old
`billingPlan` request field (partner-api.md §9 item 27), and the user-facing part of the
errors a Vercel user sees (error.user, §3). Bad input changes nothing."""
import time

import pytest
import requests

from lib import api
from lib.api import assert_billing_plan, assert_error
from lib.sandbox import start_pair

CATALOG = {
    "products": [{"id": "db", "kind": "sqlite", "name": "Tiny DB",
                  "plans": ["small", "big", "team-free", "team", "team-one", "retired"]}],
    "plans": [
        {"id": "small", "type": "subscription", "name": "Small", "description": "Two at most",
         "paymentMethodRequired": False, "maxResources": 2},
        {"id": "big", "type": "subscription", "name": "Big", "description": "d",
         "paymentMethodRequired": False},
        {"id": "team-free", "type": "subscription", "name": "Team free", "description": "d",
         "scope": "installation", "paymentMethodRequired": False, "default": True},
        {"id": "team", "type": "subscription", "name": "Team", "description": "d",
         "scope": "installation", "paymentMethodRequired": False},
        {"id": "team-one", "type": "subscription", "name": "Team one", "description": "d",
         "scope": "installation", "paymentMethodRequired": False, "maxResources": 1},
        {"id": "retired", "type": "subscription", "name": "Retired", "description": "d",
         "paymentMethodRequired": False, "disabled": True},
    ],
}


@pytest.fixture(scope="module")
def env(wharf_bin, tmp_path_factory):
    sb, w = start_pair(tmp_path_factory.mktemp("plan-rules"), wharf_bin, catalog=CATALOG)
    yield sb, w
    w.stop()
    sb.stop()



def provision(sb, iid, plan, name="db"):
    return sb.flow("provision", installationId=iid, productId="db", name=name, metadata={},
                   billingPlanId=plan)


def provisioned(sb, iid, plan, name="db"):
    status, body = provision(sb, iid, plan, name)
    assert status == 200 and body["ok"], body
    return body["resourceId"]


def token(sb, iid, kind="user"):
    body = {"kind": kind, "installationId": iid}
    if kind == "user":
        body["role"] = "ADMIN"
    return requests.post(sb.base + "/_sandbox/tokens", json=body, timeout=10).json()["token"]


def live_ids(w, sb, iid):
    r = w.get(f"/v1/installations/{iid}/resources", token(sb, iid, "system"))
    assert r.status_code == 200, r.text
    return sorted(x["id"] for x in r.json()["resources"])


def resource(w, sb, iid, rid):
    return w.get(f"/v1/installations/{iid}/resources/{rid}", token(sb, iid, "system"))


def user_error(body):
    """The partner's answer to a failed flow, as the sandbox recorded it."""
    assert body["ok"] is False, body
    err = body["response"]["error"]
    assert isinstance(err.get("user"), dict), body
    return err


# --- maxResources ----------------------------------------------------------------------------

def test_max_resources_refuses_one_more_with_a_user_message(env):
    sb, w = env
    iid = sb.install()
    first = provisioned(sb, iid, "small", "one")
    provisioned(sb, iid, "small", "two")
    before = live_ids(w, sb, iid)
    status, body = provision(sb, iid, "small", "three")
    assert body["status"] == 409, body
    err = user_error(body)
    assert err["code"] == "max_resources"
    assert err["user"]["message"] == ("The Small plan allows 2 resources. Delete a resource or "
                                      "choose another plan.")
    assert err["user"]["url"].endswith("/dashboard"), err
    assert body["findings"] == [], body  # the sandbox finds the envelope conformant
    assert live_ids(w, sb, iid) == before  # nothing was made
    # Another plan, another installation: their own counts.
    provisioned(sb, iid, "big")
    provisioned(sb, sb.install(), "small")
    # Deleting one makes room.
    assert sb.run("delete-resource", installationId=iid, resourceId=first)["ok"]
    provisioned(sb, iid, "small", "three")


def test_max_resources_applies_to_plan_changes(env):
    sb, w = env
    iid = sb.install()
    provisioned(sb, iid, "small")
    provisioned(sb, iid, "small")
    rid = provisioned(sb, iid, "big")
    status, body = sb.flow("update-resource", installationId=iid, resourceId=rid,
                           billingPlanId="small", name="renamed")
    assert body["status"] == 409 and user_error(body)["code"] == "max_resources", body
    got = resource(w, sb, iid, rid).json()
    assert got["billingPlan"]["id"] == "big" and got["name"] == "db", got


def test_max_resources_applies_to_an_installation_plan_change(env):
    sb, w = env
    iid = sb.install()
    provisioned(sb, iid, "team-free", "one")
    provisioned(sb, iid, "team-free", "two")
    status, body = sb.flow("change-plan", installationId=iid, billingPlanId="team-one")
    assert body["status"] == 409, body
    err = user_error(body)
    assert err["code"] == "max_resources"
    assert err["user"]["message"] == ("The Team one plan allows 1 resource and this installation "
                                      "has 2. Delete resources before switching."), err
    got = w.get(f"/v1/installations/{iid}", token(sb, iid, "system")).json()
    assert got["billingPlan"]["id"] == "team-free", got
    # With one left, the switch is allowed.
    assert sb.run("delete-resource", installationId=iid, resourceId=live_ids(w, sb, iid)[0])["ok"]
    status, body = sb.flow("change-plan", installationId=iid, billingPlanId="team-one")
    assert body["ok"], body
    got = w.get(f"/v1/installations/{iid}", token(sb, iid, "system")).json()
    assert got["billingPlan"]["id"] == "team-one", got


def test_max_resources_is_not_sent_to_vercel(env):
    sb, w = env
    iid = sb.install()
    r = w.get("/v1/products/db/plans", token(sb, iid, "system"))
    assert r.status_code == 200, r.text
    small = next(p for p in r.json()["plans"] if p["id"] == "small")
    assert_billing_plan(small)
    assert "maxResources" not in small


# --- plan errors carry a user message ----------------------------------------------------------

def test_plan_not_allowed_has_a_user_message(env):
    sb, w = env
    iid = sb.install()
    status, body = provision(sb, iid, "retired")
    assert body["status"] == 400, body
    assert user_error(body)["user"]["message"] == "The Retired plan is not available. Choose another plan."
    r = w.request("PATCH", f"/v1/installations/{iid}", token(sb, iid), json_body={"billingPlanId": "big"})
    err = assert_error(r, 400, "validation_error", field="billingPlanId")
    assert "single resource" in err["user"]["message"], r.text


# --- Update Resource ----------------------------------------------------------------------------

def test_update_resource_statuses(env):
    sb, w = env
    iid = sb.install()
    rid = provisioned(sb, iid, "big")
    for wanted, shown in (("suspended", "suspended"), ("resumed", "ready"),
                          ("suspended", "suspended"), ("ready", "ready")):
        out = sb.run("update-resource", installationId=iid, resourceId=rid, status=wanted)
        assert out["ok"] and out["response"]["status"] == shown, out
        assert sb.state()["resources"][iid][rid]["status"] == shown
    # The current status echoed back is accepted with the rest of the change.
    out = sb.run("update-resource", installationId=iid, resourceId=rid, status="ready", name="n2")
    assert out["ok"] and out["response"]["name"] == "n2", out
    # Statuses only the provider reports: a clear 400 on `status`, and nothing changes.
    for st in ("pending", "onboarding", "error"):
        status, body = sb.flow("update-resource", installationId=iid, resourceId=rid, status=st,
                               name="changed")
        assert body["status"] == 400, body
        assert [f["key"] for f in body["response"]["error"]["fields"]] == ["status"], body
        got = resource(w, sb, iid, rid).json()
        assert got["status"] == "ready" and got["name"] == "n2", got


def test_update_resource_uninstalled_deletes_it(env):
    sb, w = env
    iid = sb.install()
    keep = provisioned(sb, iid, "big", "keep")
    rid = provisioned(sb, iid, "big", "gone")
    url = f"/v1/installations/{iid}/resources/{rid}"
    # Bad input alongside it: refused, nothing deleted.
    r = w.request("PATCH", url, token(sb, iid), json_body={"status": "uninstalled", "billingPlanId": "nope"})
    assert_error(r, 400, "validation_error", field="billingPlanId")
    assert resource(w, sb, iid, rid).status_code == 200
    out = sb.run("update-resource", installationId=iid, resourceId=rid, status="uninstalled")
    assert out["ok"] and out["response"]["status"] == "uninstalled", out
    assert_error(resource(w, sb, iid, rid), 404, "not_found")
    assert live_ids(w, sb, iid) == [keep]
    # Delete Resource afterwards is still a success (already deleted).
    assert w.request("DELETE", url, token(sb, iid)).status_code == 204


def test_installation_scope_plan_on_update_resource_reaches_the_installation(env):
    sb, w = env
    iid = sb.install()
    assert sb.run("get-installation", installationId=iid)["response"]["billingPlan"]["id"] == "team-free"
    rid = provisioned(sb, iid, "big")
    out = sb.run("update-resource", installationId=iid, resourceId=rid, billingPlanId="team")
    assert out["ok"] and out["findings"] == [], out
    got = sb.run("get-installation", installationId=iid)
    assert got["response"]["billingPlan"]["id"] == "team", got
    # Vercel is also told, with installation.updated, through the outbox.
    def told():
        return [e["event"] for e in sb.state().get("events", [])
                if e.get("installationId") == iid and e["event"].get("type") == "installation.updated"]
    deadline = time.monotonic() + 15
    while not told() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert told(), sb.state().get("events")


def test_old_billing_plan_field_is_accepted(env):
    sb, w = env
    iid = sb.install()
    tok = token(sb, iid)
    base = f"/v1/installations/{iid}"
    # Provision Resource and Update Resource with the field's old name (§9 item 27).
    r = w.request("POST", base + "/resources", tok, json_body={
        "productId": "db", "name": "old", "metadata": {}, "billingPlan": "small"})
    assert r.status_code == 200 and r.json()["billingPlan"]["id"] == "small", r.text
    rid = r.json()["id"]
    r = w.request("PATCH", f"{base}/resources/{rid}", tok, json_body={"billingPlan": "big"})
    assert r.status_code == 200 and r.json()["billingPlan"]["id"] == "big", r.text
    # Update Installation too.
    r = w.request("PATCH", base, tok, json_body={"billingPlan": "team"})
    assert r.status_code == 200 and r.json()["billingPlan"]["id"] == "team", r.text
    # Both names disagreeing, or not a plan id: 400, and nothing changes.
    r = w.request("PATCH", f"{base}/resources/{rid}", tok,
                  json_body={"billingPlan": "small", "billingPlanId": "big", "name": "x"})
    assert_error(r, 400, "validation_error", field="billingPlan")
    r = w.request("PATCH", f"{base}/resources/{rid}", tok, json_body={"billingPlan": 5, "name": "x"})
    assert_error(r, 400, "validation_error", field="billingPlan")
    got = resource(w, sb, iid, rid).json()
    assert got["billingPlan"]["id"] == "big" and got["name"] == "old", got
