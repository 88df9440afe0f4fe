"""Idempotency-Key on mutating routes: replay without re-execution, conflict on a changed
body, scoping by (installation, method, path, key), concurrent duplicates executed once.
Uses the custom catalog so that PATCH plan sequences make re-execution observable."""
import secrets
import threading

import pytest

from lib import api, catalog
from lib.api import assert_error, assert_installation_state, assert_status, upsert_body


@pytest.fixture(scope="module")
def wharf_env(tmp_path_factory):
    return {"WHARF_CATALOG": catalog.write(tmp_path_factory.mktemp("catalog"), catalog.CUSTOM)}


def key():
    return "idem-" + secrets.token_hex(8)


def inst(iid):
    return f"/v1/installations/{iid}"


def replayed(r):
    return r.headers.get("Idempotency-Replayed", "").lower() == "true"


def plan_of(wharf, tokens, iid):
    b = assert_installation_state(wharf.request("GET", inst(iid), tokens.system(iid)))
    return (b.get("billingPlan") or {}).get("id")


def patch(wharf, tokens, iid, plan, k):
    return wharf.request("PATCH", inst(iid), tokens.user(iid), json_body={"billingPlanId": plan}, idem=k)


def test_put_replay_same_answer(wharf, tokens, iid):
    k, body = key(), upsert_body()
    first = wharf.request("PUT", inst(iid), tokens.user(iid), json_body=body, idem=k)
    assert_installation_state(first)
    assert not replayed(first), dict(first.headers)
    # A retry carries a fresh token (Vercel mints one per request) but the same key and body.
    second = wharf.request("PUT", inst(iid), tokens.user(iid), json_body=body, idem=k)
    assert second.status_code == first.status_code
    assert replayed(second), dict(second.headers)
    assert second.json() == first.json()


def test_replay_does_not_reexecute_patch(wharf, tokens, iid):
    assert_installation_state(wharf.request("PUT", inst(iid), tokens.user(iid), json_body=upsert_body()))
    k1, k2 = key(), key()
    a = patch(wharf, tokens, iid, "team-pro", k1)
    assert_status(a, 200)
    assert_status(patch(wharf, tokens, iid, "team-hobby", k2), 200)
    assert plan_of(wharf, tokens, iid) == "team-hobby"
    again = patch(wharf, tokens, iid, "team-pro", k1)
    assert_status(again, 200)
    assert replayed(again), dict(again.headers)
    assert again.json() == a.json()
    assert plan_of(wharf, tokens, iid) == "team-hobby", "the replayed PATCH executed again"


def test_replay_of_upsert_after_delete_is_not_reexecuted(wharf, tokens, iid):
    k, body = key(), upsert_body()
    first = wharf.request("PUT", inst(iid), tokens.user(iid), json_body=body, idem=k)
    assert_installation_state(first)
    assert_status(wharf.request("DELETE", inst(iid), tokens.user(iid)), 200)
    # Executing the PUT again would answer 409 (deleted installation); a replay answers as before.
    again = wharf.request("PUT", inst(iid), tokens.user(iid), json_body=body, idem=k)
    assert again.status_code == first.status_code, api.describe(again)
    assert replayed(again)
    assert again.json() == first.json()
    assert_error(wharf.request("GET", inst(iid), tokens.system(iid)), 404, "not_found")


def test_same_key_different_body_conflict(wharf, tokens, iid):
    k = key()
    assert_installation_state(wharf.request("PUT", inst(iid), tokens.user(iid), json_body=upsert_body(), idem=k))
    assert_status(patch(wharf, tokens, iid, "team-pro", "p-" + k), 200)
    r = patch(wharf, tokens, iid, "team-hobby", "p-" + k)
    assert_error(r, 409, "conflict")
    assert plan_of(wharf, tokens, iid) == "team-pro"


def test_key_scoped_by_method_path_and_installation(wharf, tokens):
    a, b = api.new_installation_id(), api.new_installation_id()
    k = key()
    body = upsert_body()
    # Same key, same body, different installations: both execute.
    ra = wharf.request("PUT", inst(a), tokens.user(a), json_body=body, idem=k)
    rb = wharf.request("PUT", inst(b), tokens.user(b), json_body=body, idem=k)
    assert_installation_state(ra)
    assert_installation_state(rb)
    assert not replayed(rb)
    assert plan_of(wharf, tokens, b) == "team-free"
    # Same key on another method of the same path: executes (no replay, no conflict).
    rp = patch(wharf, tokens, a, "team-pro", k)
    assert_status(rp, 200)
    assert not replayed(rp)
    assert plan_of(wharf, tokens, a) == "team-pro"
    rd = wharf.request("DELETE", inst(a), tokens.user(a), idem=k)
    assert_status(rd, 200)
    assert not replayed(rd)
    rd2 = wharf.request("DELETE", inst(a), tokens.system(a), idem=k)
    assert_status(rd2, 200)
    assert replayed(rd2)
    assert rd2.json() == rd.json()


def test_replay_still_authenticated_and_authorized(wharf, tokens, iid):
    assert_installation_state(wharf.request("PUT", inst(iid), tokens.user(iid), json_body=upsert_body()))
    k = key()
    assert_status(patch(wharf, tokens, iid, "team-pro", k), 200)
    body = {"billingPlanId": "team-pro"}
    r = wharf.request("PATCH", inst(iid), None, json_body=body, idem=k)
    assert_error(r, 401, "unauthorized")
    r = wharf.request("PATCH", inst(iid), tokens.user(iid, role="USER"), json_body=body, idem=k)
    assert_error(r, 403, "forbidden")
    other = api.new_installation_id()
    r = wharf.request("PATCH", inst(iid), tokens.user(other), json_body=body, idem=k)
    assert_error(r, 403, "forbidden")


def test_different_keys_execute_independently(wharf, tokens, iid):
    assert_installation_state(wharf.request("PUT", inst(iid), tokens.user(iid), json_body=upsert_body()))
    for plan in ("team-pro", "team-hobby", "team-pro"):
        r = patch(wharf, tokens, iid, plan, key())
        assert_status(r, 200)
        assert not replayed(r)
        assert plan_of(wharf, tokens, iid) == plan


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_concurrent_duplicates_execute_once(wharf, tokens, iid, method):
    if method != "PUT":
        assert_installation_state(wharf.request("PUT", inst(iid), tokens.user(iid), json_body=upsert_body()))
    k = key()
    body = {"PUT": upsert_body(), "PATCH": {"billingPlanId": "team-pro"},
            "DELETE": {"cascadeResourceDeletion": True, "reason": "test"}}[method]
    toks = [tokens.user(iid) for _ in range(8)]
    barrier = threading.Barrier(8)
    results = [None] * 8

    def one(i):
        barrier.wait(30)
        results[i] = wharf.request(method, inst(iid), toks[i], json_body=body, idem=k)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(r is not None for r in results)
    statuses = [r.status_code for r in results]
    assert statuses == [200] * 8, [api.describe(r) for r in results]
    bodies = [r.json() for r in results]
    assert all(b == bodies[0] for b in bodies), bodies
    executed = [r for r in results if not replayed(r)]
    assert len(executed) == 1, f"{len(executed)} of 8 concurrent duplicates were not replays"
