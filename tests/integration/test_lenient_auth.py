"""Lenient reads (partner-api.md §2.6 robustness note, §10 items 13 and 14), through a real
wharf-sandbox: its tokens, its installs and provisions. The six reads the docs list as
System-only also take a user token of either role, still bound to the token's installation
and logged; writes stay strict; a request without X-Vercel-Auth is judged by its claims."""
import re

import pytest
import requests

from lib import api
from lib.api import assert_error
from lib.sandbox import start_pair

UNDOCUMENTED_WARNING = "accepted an auth mode this endpoint does not document"


@pytest.fixture(scope="module")
def env(wharf_bin, tmp_path_factory):
    """A sandbox + wharf pair, two installations and a resource in the first."""
    sb, w = start_pair(tmp_path_factory.mktemp("lenient"), wharf_bin)
    a, b = api.new_installation_id(), api.new_installation_id()
    for iid in (a, b):
        assert sb.run("install", installationId=iid)["ok"]
    res = sb.run("provision", installationId=a, productId="sqlite-db", name="db",
                 metadata={"durability": "normal"}, billingPlanId="sqlite-free")
    assert res["ok"], res
    yield sb, w, a, b, res["resourceId"]
    w.stop()
    sb.stop()


def token(sb, iid, kind, role=None):
    body = {"kind": kind, "installationId": iid}
    if role:
        body["role"] = role
    r = requests.post(sb.base + "/_sandbox/tokens", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["token"]


def reads(iid, rid):
    """The six reads §2.6 documents as System-only, with a check of each answer's shape."""
    return [
        (f"/v1/installations/{iid}", lambda j: "notification" in j),
        (f"/v1/installations/{iid}/resources", lambda j: rid in [r["id"] for r in j["resources"]]),
        (f"/v1/installations/{iid}/resources/{rid}", lambda j: j["id"] == rid),
        (f"/v1/installations/{iid}/resources/{rid}/plans", lambda j: j["plans"]),
        (f"/v1/installations/{iid}/plans", lambda j: j["plans"]),
        ("/v1/products/sqlite-db/plans", lambda j: j["plans"]),
    ]


@pytest.mark.parametrize("role", ["ADMIN", "USER"])
@pytest.mark.parametrize("header", ["user", None], ids=["x-vercel-auth-user", "no-header"])
def test_user_tokens_read_what_system_tokens_read(env, role, header):
    sb, w, a, _, rid = env
    tok = token(sb, a, "user", role)
    for path, ok in reads(a, rid):
        r = w.get(path, tok, auth_mode=header)
        assert r.status_code == 200, (path, r.status_code, r.text)
        assert ok(r.json()), (path, r.text)
        # Exactly what a system token is shown.
        s = w.get(path, token(sb, a, "system"), auth_mode="system")
        assert s.status_code == 200 and s.json() == r.json(), (path, s.text, r.text)


def test_system_tokens_without_the_header_are_inferred(env):
    sb, w, a, _, rid = env
    for path, ok in reads(a, rid):
        r = w.get(path, token(sb, a, "system"))
        assert r.status_code == 200 and ok(r.json()), (path, r.text)


@pytest.mark.parametrize("kind,role", [("user", "ADMIN"), ("user", "USER"), ("system", None)])
def test_reads_stay_bound_to_the_tokens_installation(env, kind, role):
    sb, w, a, b, rid = env
    other = token(sb, b, kind, role)  # a genuine token, for installation b
    for path, _ in reads(a, rid):
        if path.startswith("/v1/products/"):
            continue  # no installation in the path (§2.7)
        for header in (kind, None):
            assert_error(w.get(path, other, auth_mode=header), 403, "forbidden")


def test_the_header_still_may_not_contradict_the_claims(env):
    sb, w, a, _, rid = env
    r = w.get(f"/v1/installations/{a}/resources/{rid}", token(sb, a, "user", "ADMIN"), auth_mode="system")
    assert_error(r, 403, "forbidden")
    r = w.get(f"/v1/installations/{a}", token(sb, a, "system"), auth_mode="user")
    assert_error(r, 403, "forbidden")


def test_writes_stay_strict(env):
    sb, w, a, _, rid = env
    system = token(sb, a, "system")
    viewer = token(sb, a, "user", "USER")
    inst = f"/v1/installations/{a}"
    # A System token where the docs say user.
    assert_error(w.request("PUT", inst, system, json_body=api.upsert_body()), 403, "forbidden")
    assert_error(w.request("PATCH", inst, system, json_body={}), 403, "forbidden")
    assert_error(w.request("POST", inst + "/resources", system, json_body={
        "productId": "sqlite-db", "name": "x", "metadata": {"durability": "normal"},
        "billingPlanId": "sqlite-free"}), 403, "forbidden")
    assert_error(w.request("PATCH", f"{inst}/resources/{rid}", system, json_body={"name": "x"}),
                 403, "forbidden")
    # The USER role on writes that need ADMIN, with and without the header.
    for header in ("user", None):
        assert_error(w.request("PATCH", inst, viewer, auth_mode=header, json_body={}), 403, "forbidden")
        assert_error(w.request("PATCH", f"{inst}/resources/{rid}", viewer, auth_mode=header,
                               json_body={"name": "renamed"}), 403, "forbidden")
        assert_error(w.request("DELETE", f"{inst}/resources/{rid}", viewer, auth_mode=header),
                     403, "forbidden")
    # Nothing changed.
    got = w.get(f"{inst}/resources/{rid}", system)
    assert got.status_code == 200 and got.json()["name"] == "db", got.text


def undocumented_count(w, route):
    total = 0
    pattern = (r'^wharf_auth_undocumented_mode_total\{route="' + re.escape(route) +
               r'",method="GET",mode="user"\}\s+([0-9.]+)$')
    for m in re.finditer(pattern, w.metrics(), re.M):
        total += float(m.group(1))
    return total


def test_the_unexpected_mode_is_logged_and_counted(env):
    sb, w, a, _, rid = env
    route = "/v1/installations/{installationId}/resources/{resourceId}"
    before = undocumented_count(w, route)
    path = f"/v1/installations/{a}/resources/{rid}"
    r = w.get(path, token(sb, a, "user", "USER"))
    assert r.status_code == 200, r.text
    # The request's access-log line names the mode the docs do not list...
    line = w.wait_for_log(lambda rec: rec.get("msg") == "request" and rec.get("route") == route
                          and rec.get("auth_undocumented_mode") == "user")
    assert line is not None, w.stderr_tail()
    # ...one warning per route and mode says what was accepted...
    warn = w.wait_for_log(lambda rec: rec.get("msg") == UNDOCUMENTED_WARNING and rec.get("route") == route)
    assert warn is not None and warn.get("mode") == "user", w.stderr_tail()
    assert sum(1 for rec in w.log_records() if rec.get("msg") == UNDOCUMENTED_WARNING
               and rec.get("route") == route) == 1
    # ...and /metrics counts each such request.
    assert undocumented_count(w, route) == before + 1
    # A system token is the documented mode: nothing counted.
    assert w.get(path, token(sb, a, "system")).status_code == 200
    assert undocumented_count(w, route) == before + 1
