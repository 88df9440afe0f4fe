"""A custom catalog (WHARF_CATALOG): plans returned exactly as written minus the Wharf-only
keys, the `match` metadata filter, and installation-level billing (spec §8.1): the default
plan at Upsert, `billingPlan` in InstallationState, plan change via PATCH, `finalized`."""
import copy
import json
import urllib.parse

import pytest

from lib import api, catalog
from lib.api import (WHARF_ONLY_KEYS, assert_error, assert_installation_state, assert_status,
                     upsert_body)


@pytest.fixture(scope="module")
def wharf_env(tmp_path_factory):
    return {"WHARF_CATALOG": catalog.write(tmp_path_factory.mktemp("catalog"), catalog.CUSTOM)}


def public(plan_id, cat=catalog.CUSTOM):
    p = copy.deepcopy(next(p for p in cat["plans"] if p["id"] == plan_id))
    for k in WHARF_ONLY_KEYS:
        p.pop(k, None)
    return p


def plans(r):
    assert_status(r, 200)
    b = api.body_json(r)
    assert isinstance(b.get("plans"), list), api.describe(r)
    return b["plans"]


def q(path, metadata):
    return path + "?metadata=" + urllib.parse.quote(json.dumps(metadata))


def inst(iid):
    return f"/v1/installations/{iid}"


def upsert(wharf, tokens, iid):
    return assert_installation_state(wharf.request("PUT", inst(iid), tokens.user(iid), json_body=upsert_body()))


def patch(wharf, tokens, iid, plan_id, **kw):
    return wharf.request("PATCH", inst(iid), tokens.user(iid), json_body={"billingPlanId": plan_id}, **kw)


def get(wharf, tokens, iid):
    return assert_installation_state(wharf.request("GET", inst(iid), tokens.system(iid)))


# --- plans as written -------------------------------------------------------------------------

def test_product_plans_exact_and_stripped(wharf, tokens):
    got = plans(wharf.request("GET", "/v1/products/kv-store/plans", tokens.system(None)))
    assert got == [public("kv-small"), public("kv-eu-only"), public("kv-credits")]
    got = plans(wharf.request("GET", "/v1/products/team-db/plans", tokens.system(None)))
    assert got == [public(i) for i in ("team-pro", "team-hobby", "team-free", "team-enterprise")]


@pytest.mark.parametrize("metadata,expected", [
    (None, ["kv-small", "kv-eu-only", "kv-credits"]),
    ({}, ["kv-small", "kv-eu-only", "kv-credits"]),
    ({"region": "fra1"}, ["kv-small", "kv-eu-only", "kv-credits"]),
    ({"region": "sfo1"}, ["kv-small", "kv-credits"]),
    ({"region": "iad1", "other": 1}, ["kv-small", "kv-credits"]),
    ({"other": "fra1"}, ["kv-small", "kv-eu-only", "kv-credits"]),
], ids=["no-metadata", "empty", "allowed-value", "disallowed-value", "disallowed-plus-other", "key-absent"])
def test_match_filter_on_product_plans(wharf, tokens, metadata, expected):
    path = "/v1/products/kv-store/plans"
    if metadata is not None:
        path = q(path, metadata)
    got = plans(wharf.request("GET", path, tokens.system(None)))
    assert [p["id"] for p in got] == expected


def test_installation_plans_all_products_and_filter(wharf, tokens, iid):
    upsert(wharf, tokens, iid)
    path = f"{inst(iid)}/plans"
    got = plans(wharf.request("GET", path, tokens.system(iid)))
    ids = [p["id"] for p in got]
    assert sorted(ids) == sorted(catalog.CUSTOM_PLAN_IDS) and len(ids) == len(set(ids)), ids
    for p in got:
        assert p == public(p["id"])
    got = plans(wharf.request("GET", q(path, {"region": "sfo1"}), tokens.system(iid)))
    assert sorted(p["id"] for p in got) == sorted(set(catalog.CUSTOM_PLAN_IDS) - {"kv-eu-only"})


# --- installation-level billing -----------------------------------------------------------------

def test_upsert_assigns_marked_default_plan(wharf, tokens, iid):
    b = upsert(wharf, tokens, iid)
    assert b.get("billingPlan") == public("team-free"), b
    assert get(wharf, tokens, iid).get("billingPlan") == public("team-free")


def test_patch_changes_plan_and_get_reflects_it(wharf, tokens, iid):
    upsert(wharf, tokens, iid)
    r = patch(wharf, tokens, iid, "team-pro")
    assert assert_installation_state(r).get("billingPlan") == public("team-pro")
    assert get(wharf, tokens, iid).get("billingPlan") == public("team-pro")
    r = patch(wharf, tokens, iid, "team-hobby")
    assert assert_installation_state(r).get("billingPlan") == public("team-hobby")
    assert get(wharf, tokens, iid).get("billingPlan") == public("team-hobby")


def test_patch_without_plan_keeps_plan(wharf, tokens, iid):
    upsert(wharf, tokens, iid)
    assert_status(patch(wharf, tokens, iid, "team-pro"), 200)
    r = wharf.request("PATCH", inst(iid), tokens.user(iid), json_body={})
    assert assert_installation_state(r).get("billingPlan") == public("team-pro")


@pytest.mark.parametrize("plan_id", ["kv-small", "kv-credits", "nope"],
                         ids=["resource-scope", "resource-prepayment", "unknown"])
def test_patch_invalid_plan_rejected_and_nothing_written(wharf, tokens, iid, plan_id):
    upsert(wharf, tokens, iid)
    assert_status(patch(wharf, tokens, iid, "team-pro"), 200)
    assert_error(patch(wharf, tokens, iid, plan_id), 400, "validation_error", field="billingPlanId")
    assert get(wharf, tokens, iid).get("billingPlan") == public("team-pro")


def test_delete_finalized_on_free_plan(wharf, tokens, iid):
    upsert(wharf, tokens, iid)
    r = wharf.request("DELETE", inst(iid), tokens.user(iid))
    assert_status(r, 200)
    assert r.json() == {"finalized": True}, api.describe(r)


def test_delete_right_after_a_paid_plan_owes_its_sign_up_charge(wharf, tokens, iid):
    # Seconds of team-pro cost less than Vercel's $0.50 minimum, but the plan's initialCharge
    # ($20) was invoiced when it was taken: that invoice is owed, so the uninstall waits for
    # it (days of a paid plan: test_sandbox_flows.py::test_installation_level_billing_plan_change;
    # the sign-up charge through Vercel: test_signup_charge.py).
    upsert(wharf, tokens, iid)
    assert_status(patch(wharf, tokens, iid, "team-pro"), 200)
    r = wharf.request("DELETE", inst(iid), tokens.user(iid))
    assert_status(r, 200)
    assert r.json() == {"finalized": False}, api.describe(r)
    r2 = wharf.request("DELETE", inst(iid), tokens.system(iid))
    assert_status(r2, 200)
    assert isinstance(r2.json().get("finalized"), bool), api.describe(r2)
    assert_error(wharf.request("GET", inst(iid), tokens.system(iid)), 404, "not_found")


def test_default_rule_without_marked_default(make_wharf, tokens, tmp_path, iid):
    w = make_wharf(env={"WHARF_CATALOG": catalog.write(tmp_path, catalog.without_default())})
    r = w.request("PUT", inst(iid), tokens.user(iid), json_body=upsert_body())
    expected = public("team-hobby", catalog.without_default())
    assert assert_installation_state(r).get("billingPlan") == expected
    r = w.request("GET", inst(iid), tokens.system(iid))
    assert assert_installation_state(r).get("billingPlan") == expected
