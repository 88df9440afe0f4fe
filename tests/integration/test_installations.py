"""Upsert / Get / Update / Delete Installation (spec §5.1–5.4) with the built-in catalog:
success paths, validation (table-driven), and "nothing is written when a request fails"."""
import json
import threading

import pytest

from lib import api
from lib.api import assert_error, assert_installation_state, assert_status, upsert_body


def path(iid):
    return f"/v1/installations/{iid}"


def put(wharf, tokens, iid, body, **kw):
    return wharf.request("PUT", path(iid), kw.pop("token", None) or tokens.user(iid),
                         json_body=body, **kw)


def get(wharf, tokens, iid):
    return wharf.request("GET", path(iid), tokens.system(iid))


# --- success paths ---------------------------------------------------------------------------

def test_upsert_then_get(wharf, tokens, iid):
    r = put(wharf, tokens, iid, upsert_body())
    b = assert_installation_state(r)
    # The built-in catalog has only resource-scope plans: no installation-level plan.
    assert "billingPlan" not in b, api.describe(r)
    g = get(wharf, tokens, iid)
    gb = assert_installation_state(g)
    assert "billingPlan" not in gb, api.describe(g)


def test_get_unknown_installation_is_404(wharf, tokens, iid):
    assert_error(get(wharf, tokens, iid), 404, "not_found")


def test_reupsert_updates_in_place(wharf, tokens, iid):
    assert_installation_state(put(wharf, tokens, iid, upsert_body()))
    second = upsert_body(scopes=["read:resource"],
                         acceptedPolicies={"toc": "2024-02-28T10:00:00Z", "privacy": "2024-03-01T00:00:00Z"})
    assert_installation_state(put(wharf, tokens, iid, second))
    assert_installation_state(put(wharf, tokens, iid, upsert_body()))
    assert_installation_state(get(wharf, tokens, iid))


def test_upsert_without_account_and_with_null_contact(wharf, tokens):
    a, b = api.new_installation_id(), api.new_installation_id()
    body = upsert_body()
    del body["account"]
    assert_installation_state(put(wharf, tokens, a, body))
    assert_installation_state(put(wharf, tokens, b, upsert_body(account={"url": "https://vercel.com/x", "contact": None})))
    assert_installation_state(get(wharf, tokens, a))
    assert_installation_state(get(wharf, tokens, b))


def test_unknown_fields_tolerated(wharf, tokens, iid):
    body = upsert_body(futureField={"x": [1, 2]}, anotherOne=3)
    body["credentials"]["expires_in"] = 3600
    body["account"]["contact"]["phone"] = "+1"
    body["account"]["extra"] = True
    assert_installation_state(put(wharf, tokens, iid, body))


def test_charset_parameter_allowed(wharf, tokens, iid):
    r = wharf.request("PUT", path(iid), tokens.user(iid), data=json.dumps(upsert_body()).encode(),
                      headers={"Content-Type": "application/json; charset=utf-8"})
    assert_installation_state(r)


def test_patch_without_plan_is_ok(wharf, tokens, installed):
    r = wharf.request("PATCH", path(installed), tokens.user(installed), json_body={})
    assert_installation_state(r)


@pytest.mark.parametrize("plan", ["no-such-plan", "sqlite-free", "sqlite-pro"])
def test_patch_unknown_or_resource_scope_plan_rejected(wharf, tokens, installed, plan):
    r = wharf.request("PATCH", path(installed), tokens.user(installed), json_body={"billingPlanId": plan})
    assert_error(r, 400, "validation_error", field="billingPlanId")
    assert "billingPlan" not in assert_installation_state(get(wharf, tokens, installed))


def test_patch_wrong_type(wharf, tokens, installed):
    r = wharf.request("PATCH", path(installed), tokens.user(installed), json_body={"billingPlanId": 7})
    assert_error(r, 400, "validation_error", field="billingPlanId")


def test_patch_unknown_installation_is_404(wharf, tokens, iid):
    r = wharf.request("PATCH", path(iid), tokens.user(iid), json_body={})
    assert_error(r, 404, "not_found")
    assert_error(get(wharf, tokens, iid), 404, "not_found")


def test_delete_then_get_404_and_repeat_delete(wharf, tokens, installed):
    r = wharf.request("DELETE", path(installed), tokens.user(installed))
    assert_status(r, 200)
    assert r.json() == {"finalized": True}, api.describe(r)
    assert_error(get(wharf, tokens, installed), 404, "not_found")
    r2 = wharf.request("DELETE", path(installed), tokens.user(installed))
    assert_status(r2, 200)
    assert isinstance(r2.json().get("finalized"), bool), api.describe(r2)


def test_delete_with_body_by_system(wharf, tokens, installed):
    r = wharf.request("DELETE", path(installed), tokens.system(installed),
                      json_body={"cascadeResourceDeletion": True, "reason": "account-deleted"})
    assert_status(r, 200)
    assert r.json() == {"finalized": True}, api.describe(r)


def test_delete_without_body_or_content_type(wharf, tokens, installed):
    # requests sends no Content-Type for a body-less DELETE; make Content-Length explicit too.
    r = wharf.request("DELETE", path(installed), tokens.user(installed), headers={"Content-Length": "0"})
    assert "Content-Type" not in r.request.headers
    assert_status(r, 200)
    assert r.json()["finalized"] is True


@pytest.mark.parametrize("body,field", [
    ({"cascadeResourceDeletion": "yes"}, "cascadeResourceDeletion"),
    ({"reason": 5}, "reason"),
])
def test_delete_body_validated(wharf, tokens, installed, body, field):
    r = wharf.request("DELETE", path(installed), tokens.user(installed), json_body=body)
    assert_error(r, 400, "validation_error", field=field)
    assert_installation_state(get(wharf, tokens, installed))  # still there


@pytest.mark.parametrize("data,ctype", [
    (b"{oops", "application/json"),
    (b"[]", "application/json"),
    (b'{"reason":"x"}', "text/plain"),
], ids=["non-json", "array", "wrong-content-type"])
def test_delete_bad_body_rejected(wharf, tokens, installed, data, ctype):
    r = wharf.request("DELETE", path(installed), tokens.user(installed), data=data,
                      headers={"Content-Type": ctype})
    assert_error(r, 400, "validation_error")
    assert_installation_state(get(wharf, tokens, installed))  # still there


def test_delete_unknown_is_404(wharf, tokens, iid):
    assert_error(wharf.request("DELETE", path(iid), tokens.system(iid)), 404, "not_found")


def test_upsert_after_delete_is_409_and_new_id_is_new_installation(wharf, tokens, installed):
    assert_status(wharf.request("DELETE", path(installed), tokens.user(installed)), 200)
    err = assert_error(put(wharf, tokens, installed, upsert_body()), 409, "conflict")
    assert err["user"]["message"] == "This installation was removed. Install the integration again to continue."
    assert_error(get(wharf, tokens, installed), 404, "not_found")
    fresh = api.new_installation_id()
    assert_installation_state(put(wharf, tokens, fresh, upsert_body()))
    assert_installation_state(get(wharf, tokens, fresh))


def test_concurrent_upserts_same_installation(wharf, tokens, iid):
    results = []

    def one():
        results.append(put(wharf, tokens, iid, upsert_body()).status_code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [200] * 8, results
    assert_installation_state(get(wharf, tokens, iid))


# --- validation ------------------------------------------------------------------------------

def _without(d, dotted):
    d = json.loads(json.dumps(d))
    parts = dotted.split(".")
    cur = d
    for p in parts[:-1]:
        cur = cur[p]
    del cur[parts[-1]]
    return d


def _with(d, dotted, value):
    d = json.loads(json.dumps(d))
    parts = dotted.split(".")
    cur = d
    for p in parts[:-1]:
        cur = cur[p]
    cur[parts[-1]] = value
    return d


BASE = upsert_body(access_token="tok_validation")

UPSERT_INVALID = [
    # (id, body, expected field key)
    ("missing scopes", _without(BASE, "scopes"), "scopes"),
    ("scopes not array", _with(BASE, "scopes", "read"), "scopes"),
    ("scopes item not string", _with(BASE, "scopes", [1]), "scopes[0]"),
    ("scopes second item null", _with(BASE, "scopes", ["read", None]), "scopes[1]"),
    ("missing acceptedPolicies", _without(BASE, "acceptedPolicies"), "acceptedPolicies"),
    ("acceptedPolicies array", _with(BASE, "acceptedPolicies", ["toc"]), "acceptedPolicies"),
    ("acceptedPolicies value number", _with(BASE, "acceptedPolicies", {"toc": 1}), "acceptedPolicies.toc"),
    ("missing credentials", _without(BASE, "credentials"), "credentials"),
    ("credentials string", _with(BASE, "credentials", "tok"), "credentials"),
    ("missing access_token", _without(BASE, "credentials.access_token"), "credentials.access_token"),
    ("access_token number", _with(BASE, "credentials.access_token", 12), "credentials.access_token"),
    ("missing token_type", _without(BASE, "credentials.token_type"), "credentials.token_type"),
    ("token_type null", _with(BASE, "credentials.token_type", None), "credentials.token_type"),
    ("account not object", _with(BASE, "account", "acme"), "account"),
    ("account.url missing", _without(BASE, "account.url"), "account.url"),
    ("account.url number", _with(BASE, "account.url", 5), "account.url"),
    ("account.name number", _with(BASE, "account.name", 5), "account.name"),
    ("account.contact missing", _without(BASE, "account.contact"), "account.contact"),
    ("account.contact string", _with(BASE, "account.contact", "x"), "account.contact"),
    ("contact.email missing", _without(BASE, "account.contact.email"), "account.contact.email"),
    ("contact.email number", _with(BASE, "account.contact.email", 3), "account.contact.email"),
    ("contact.name number", _with(BASE, "account.contact.name", 3), "account.contact.name"),
]


@pytest.mark.parametrize("body,field", [c[1:] for c in UPSERT_INVALID], ids=[c[0] for c in UPSERT_INVALID])
def test_upsert_validation(wharf, tokens, iid, body, field):
    assert_error(put(wharf, tokens, iid, body), 400, "validation_error", field=field)
    # nothing written
    assert_error(get(wharf, tokens, iid), 404, "not_found")


@pytest.mark.parametrize("data,ctype", [
    (b"{not json", "application/json"),
    (b"", "application/json"),
    (b"[]", "application/json"),
    (b"null", "application/json"),
    (b'"string"', "application/json"),
    (json.dumps(BASE).encode()[:-1], "application/json"),      # truncated
    (json.dumps(BASE).encode() + b" trailing", "application/json"),
    (json.dumps(BASE).encode(), "text/plain"),
    (json.dumps(BASE).encode(), "application/x-www-form-urlencoded"),
    (json.dumps(BASE).encode(), None),                           # no Content-Type
], ids=["garbage", "empty", "array", "null", "string", "truncated", "trailing-garbage",
        "text/plain", "form", "no-content-type"])
def test_upsert_bad_body_or_content_type(wharf, tokens, iid, data, ctype):
    r = wharf.request("PUT", path(iid), tokens.user(iid), data=data,
                      headers={"Content-Type": ctype} if ctype else {})
    if ctype is None:
        assert "Content-Type" not in r.request.headers
    assert_error(r, 400, "validation_error")
    assert_error(get(wharf, tokens, iid), 404, "not_found")


def test_patch_bad_content_type(wharf, tokens, installed):
    r = wharf.request("PATCH", path(installed), tokens.user(installed), data=b'{"billingPlanId":"x"}',
                      headers={"Content-Type": "text/plain"})
    assert_error(r, 400, "validation_error")
    r = wharf.request("PATCH", path(installed), tokens.user(installed), data=b'{oops',
                      headers={"Content-Type": "application/json"})
    assert_error(r, 400, "validation_error")


def test_failed_auth_writes_nothing(wharf, tokens, iid):
    # USER role may not write; a token for another installation may not write here.
    r = put(wharf, tokens, iid, upsert_body(), token=tokens.user(iid, role="USER"))
    assert_error(r, 403, "forbidden")
    other = api.new_installation_id()
    r = put(wharf, tokens, iid, upsert_body(), token=tokens.user(other))
    assert_error(r, 403, "forbidden")
    assert_error(get(wharf, tokens, iid), 404, "not_found")
    assert_error(get(wharf, tokens, other), 404, "not_found")
