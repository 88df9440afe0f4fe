"""Request bodies and response assertions shared by the integration tests."""
import copy
import json
import secrets
import string

_ALNUM = string.ascii_letters + string.digits


def new_installation_id():
    return "icfg_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


def new_access_token():
    return "tok_" + secrets.token_hex(24)


def upsert_body(access_token=None, **overrides):
    body = {
        "scopes": ["read:resource", "write:resource"],
        "acceptedPolicies": {"toc": "2024-02-28T10:00:00Z"},
        "credentials": {"access_token": access_token or new_access_token(), "token_type": "Bearer"},
        "account": {"name": "Acme Team", "url": "https://vercel.com/acme/~/integrations/x",
                    "contact": {"email": "owner@example.com", "name": "Owner"}},
    }
    body.update(copy.deepcopy(overrides))
    return body


def body_json(r):
    try:
        return r.json()
    except ValueError:
        raise AssertionError(f"{r.request.method} {r.request.path_url} -> {r.status_code}: "
                             f"body is not JSON: {r.text[:300]!r}")


def describe(r):
    return (f"{r.request.method} {r.request.path_url} -> {r.status_code} "
            f"{r.headers.get('Content-Type')!r} {r.text[:500]!r}")


def assert_status(r, status):
    assert r.status_code == status, f"expected {status}: {describe(r)}"


def assert_error(r, status, code=None, field=None, fields=None):
    """Check the §3 envelope: {"error":{"code":str,"message":str,"fields"?:[{"key":str,...}]}}."""
    assert r.status_code == status, f"expected {status}: {describe(r)}"
    ctype = r.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip().lower() == "application/json", describe(r)
    b = body_json(r)
    assert isinstance(b, dict) and isinstance(b.get("error"), dict), describe(r)
    err = b["error"]
    assert isinstance(err.get("code"), str) and err["code"], describe(r)
    assert isinstance(err.get("message"), str), describe(r)
    if code is not None:
        assert err["code"] == code, f"expected code {code}: {describe(r)}"
    if "fields" in err:
        assert isinstance(err["fields"], list), describe(r)
        for f in err["fields"]:
            assert isinstance(f, dict) and isinstance(f.get("key"), str), describe(r)
            if "message" in f:
                assert isinstance(f["message"], str), describe(r)
    wanted = list(fields or []) + ([field] if field else [])
    if wanted:
        keys = [f["key"] for f in err.get("fields", [])]
        for w in wanted:
            assert w in keys, f"expected a field {w!r} in {keys}: {describe(r)}"
    return err


def assert_installation_state(r):
    assert r.status_code == 200, describe(r)
    b = body_json(r)
    assert isinstance(b, dict), describe(r)
    assert "notification" in b, f"InstallationState without notification: {describe(r)}"
    assert b["notification"] is None or isinstance(b["notification"], dict), describe(r)
    if "billingPlan" in b:
        assert isinstance(b["billingPlan"], dict), describe(r)
    return b


WHARF_ONLY_KEYS = ("pricing", "limits", "default", "match", "maxResources")


def assert_billing_plan(p):
    assert isinstance(p, dict), p
    for k in ("id", "type", "name", "description"):
        assert isinstance(p.get(k), str), f"plan lacks {k}: {json.dumps(p)}"
    assert p["type"] in ("prepayment", "subscription"), p
    if "scope" in p:
        assert p["scope"] in ("installation", "resource"), p
    for k in WHARF_ONLY_KEYS:
        assert k not in p, f"Wharf-only key {k!r} leaked into a plan: {json.dumps(p)}"
