"""The three plans endpoints (spec §5.12–5.14) against the built-in catalog: product plans
(not bound to an installation), installation plans, resource plans, the `metadata` query."""
import json
import urllib.parse

import pytest

from lib import api
from lib.api import assert_billing_plan, assert_error, assert_status
from lib.vercel import REMOVE

BUILTIN_IDS = ["sqlite-free", "sqlite-pro", "sqlite-credits"]
# The installation's plans: every product's (the built-in catalog also sells `flags`).
INSTALLATION_IDS = BUILTIN_IDS + ["flags-free", "flags-pro"]


def plans_of(r):
    assert_status(r, 200)
    b = api.body_json(r)
    assert isinstance(b, dict) and isinstance(b.get("plans"), list), api.describe(r)
    for p in b["plans"]:
        assert_billing_plan(p)
    return b["plans"]


def with_metadata(path, value):
    return path + "?metadata=" + urllib.parse.quote(value if isinstance(value, str) else json.dumps(value))


# --- product plans -----------------------------------------------------------------------------

@pytest.mark.parametrize("claims", [
    {},
    {"installation_id": None, "account_id": REMOVE},            # pre-install token (§2.7)
    {"installation_id": None, "account_id": REMOVE, "sub": None},
], ids=["bound-token", "pre-install-token", "pre-install-null-sub"])
def test_product_plans_builtin(wharf, tokens, iid, claims):
    claims = dict(claims)
    target = claims.pop("installation_id", iid)
    r = wharf.request("GET", "/v1/products/sqlite-db/plans", tokens.system(target, **claims))
    plans = plans_of(r)
    assert [p["id"] for p in plans] == BUILTIN_IDS
    by_id = {p["id"]: p for p in plans}
    free, pro, credits = by_id["sqlite-free"], by_id["sqlite-pro"], by_id["sqlite-credits"]
    assert free["type"] == "subscription" and free["paymentMethodRequired"] is False
    assert pro["type"] == "subscription" and pro.get("paymentMethodRequired", True) is True
    assert credits["type"] == "prepayment"
    for k in ("minimumAmount", "maximumAmount"):
        assert isinstance(credits.get(k), str), credits
        float(credits[k])
    for p in plans:
        assert p.get("scope", "resource") == "resource", p


def test_product_plans_not_bound_to_installation(wharf, tokens):
    # A token for some other (even unknown) installation may list a product's plans.
    other = api.new_installation_id()
    plans_of(wharf.request("GET", "/v1/products/sqlite-db/plans", tokens.system(other)))


def test_unknown_product_404(wharf, tokens):
    r = wharf.request("GET", "/v1/products/no-such-product/plans", tokens.system(None, account_id=REMOVE))
    assert_error(r, 404, "not_found")


def test_product_plans_require_auth(wharf):
    assert_error(wharf.request("GET", "/v1/products/sqlite-db/plans"), 401, "unauthorized")


@pytest.mark.parametrize("metadata", [{}, {"durability": "full"}, {"unknown": [1, 2, {"x": None}]}],
                         ids=["empty", "known-key", "unknown-key"])
def test_product_plans_metadata_accepted(wharf, tokens, metadata):
    r = wharf.request("GET", with_metadata("/v1/products/sqlite-db/plans", metadata), tokens.system(None))
    assert [p["id"] for p in plans_of(r)] == BUILTIN_IDS


BAD_METADATA = ["{not json", "[1,2]", '"text"', "42", "null", "true", '{"a":1} trailing']


@pytest.mark.parametrize("raw", BAD_METADATA)
def test_product_plans_bad_metadata(wharf, tokens, raw):
    r = wharf.request("GET", with_metadata("/v1/products/sqlite-db/plans", raw), tokens.system(None))
    assert_error(r, 400, "validation_error", field="metadata")


# --- installation plans ------------------------------------------------------------------------

def test_installation_plans(wharf, tokens, installed):
    r = wharf.request("GET", f"/v1/installations/{installed}/plans", tokens.system(installed))
    ids = [p["id"] for p in plans_of(r)]
    assert sorted(ids) == sorted(INSTALLATION_IDS) and len(ids) == len(set(ids)), ids


def test_installation_plans_metadata(wharf, tokens, installed):
    path = f"/v1/installations/{installed}/plans"
    r = wharf.request("GET", with_metadata(path, {"durability": "normal"}), tokens.system(installed))
    assert sorted(p["id"] for p in plans_of(r)) == sorted(INSTALLATION_IDS)
    r = wharf.request("GET", with_metadata(path, "[1]"), tokens.system(installed))
    assert_error(r, 400, "validation_error", field="metadata")


def test_installation_plans_user_token_accepted_for_its_installation(wharf, tokens, installed):
    r = wharf.request("GET", f"/v1/installations/{installed}/plans", tokens.user(installed, role="USER"))
    assert sorted(p["id"] for p in plans_of(r)) == sorted(INSTALLATION_IDS)
    other = api.new_installation_id()
    r = wharf.request("GET", f"/v1/installations/{installed}/plans", tokens.user(other))
    assert_error(r, 403, "forbidden")


# --- resource plans ----------------------------------------------------------------------------

def test_resource_plans_unknown_resource_404(wharf, tokens, installed):
    r = wharf.request("GET", f"/v1/installations/{installed}/resources/res_nope/plans", tokens.system(installed))
    assert_error(r, 404, "not_found")


def test_resource_plans_user_token_passes_auth(wharf, tokens, installed):
    # Accepted (lenient read): the unknown resource is what answers, not the token's mode.
    r = wharf.request("GET", f"/v1/installations/{installed}/resources/res_nope/plans", tokens.user(installed))
    assert_error(r, 404, "not_found")
    other = api.new_installation_id()
    r = wharf.request("GET", f"/v1/installations/{installed}/resources/res_nope/plans", tokens.user(other))
    assert_error(r, 403, "forbidden")
