"""The `http` product kind: a provider's own service (examples/backend/server.py, run as a real
process) behind Wharf, driven through the real wharf-sandbox — both directions of the product
protocol (spec/product-protocol.md): signed calls with idempotency keys, sync and async
provisioning, retries from the outbox, callbacks, usage with dedupe, errors passed through."""
import json
import os
import time
import uuid
from datetime import datetime, timezone

import pytest
import requests

from lib import api
from lib.backend_example import ExampleBackend, sign
from lib.billing import wait_until, wharf_cli
from lib.sandbox import start_pair

SECRET = "acme-backend-shared-secret-0123456789abcdef"
PRODUCT = "acme-kv"


def catalog(backend_url, provision_wait_ms=3000, timeout_ms=2000):
    return {
        "products": [
            {"id": "sqlite-db", "kind": "sqlite", "name": "SQLite", "plans": ["sqlite-free"]},
            {"id": PRODUCT, "kind": "http", "name": "Acme KV", "plans": ["kv-free", "kv-pro"],
             "backend": {"url": backend_url, "secretEnv": "ACME_BACKEND_SECRET",
                         "timeoutMs": timeout_ms, "provisionWaitMs": provision_wait_ms,
                         "capabilities": ["repl", "rotate", "transfer"]}},
        ],
        "plans": [
            {"id": "sqlite-free", "type": "subscription", "name": "Hobby", "description": "Free",
             "scope": "resource", "paymentMethodRequired": False, "cost": "Free"},
            {"id": "kv-free", "type": "subscription", "name": "KV Free", "description": "Free KV",
             "scope": "resource", "paymentMethodRequired": False, "cost": "Free"},
            {"id": "kv-pro", "type": "subscription", "name": "KV Pro", "description": "Paid KV",
             "scope": "resource", "paymentMethodRequired": True, "cost": "$5.00/month + usage",
             "pricing": {"baseFee": "5.00", "metrics": {
                 "requests": {"unit": "million requests", "unitPrice": "2.00", "per": 1000000}}}},
        ],
    }


class Stack:
    """A backend, a wharf selling it, and the sandbox playing Vercel."""

    def __init__(self, tmp, wharf_bin, async_provision=False, **catalog_options):
        self.tmp = tmp
        # The backend needs Wharf's URL before Wharf starts: reserve the port first.
        from lib.wharf import free_port
        self.wport = free_port()
        self.backend = ExampleBackend(tmp / "backend", f"http://127.0.0.1:{self.wport}",
                                      product_id=PRODUCT, secret=SECRET,
                                      async_provision=async_provision, async_delay_ms=800)
        self.sb, self.w = start_pair(
            tmp, wharf_bin, catalog=catalog(self.backend.url, **catalog_options),
            wharf_env={"ACME_BACKEND_SECRET": SECRET}, wharf_port=self.wport)

    def close(self):
        self.w.stop()
        self.sb.stop()
        self.backend.stop()

    def install(self):
        iid = api.new_installation_id()
        res = self.sb.flow("install", installationId=iid)[1]
        assert res["ok"], res
        return iid

    def provision(self, iid, name="kv", plan="kv-free", metadata=None):
        return self.sb.flow("provision", installationId=iid, productId=PRODUCT, name=name,
                            metadata=metadata or {}, billingPlanId=plan)

    def vercel_resource(self, iid, rid):
        return self.sb.state()["resources"][iid][rid]

    def callback(self, path, body, secret=SECRET, t=None, product=PRODUCT, header=None):
        raw = json.dumps(body).encode()
        h = {"Content-Type": "application/json"}
        if header is not False:
            h["Wharf-Signature"] = header or sign(secret, raw, t)
        return requests.post(f"{self.w.url('')}/v1/backend/{product}/{path}", data=raw,
                             headers=h, timeout=30)


def secrets_of(response):
    return {s["name"]: s["value"] for s in response.get("secrets", [])}


def calls(backend, method, rid):
    return [c for c in backend.calls() if c["method"] == method and f"/resources/{rid}" in c["path"]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, wharf_bin):
    s = Stack(tmp_path_factory.mktemp("http-product"), wharf_bin)
    yield s
    s.close()


def kv(secrets, method, key, value=None, token=None):
    url = f"{secrets['KV_REST_API_URL']}/{key}"
    return requests.request(method, url, data=value, timeout=10,
                            headers={"Authorization": f"Bearer {token or secrets['KV_REST_API_TOKEN']}"})


def test_sync_lifecycle_through_the_sandbox(stack):
    iid = stack.install()
    status, res = stack.provision(iid, name="cache")
    assert status == 200 and res["ok"] and res["findings"] == [], res
    body = res["response"]
    assert body["status"] == "ready"
    secrets = secrets_of(body)
    assert set(secrets) >= {"KV_REST_API_URL", "KV_REST_API_TOKEN"}
    rid = body["id"]
    # The product is real: the secrets work against the provider's own service.
    assert kv(secrets, "PUT", "greeting", "hello").status_code in (200, 204)
    assert kv(secrets, "GET", "greeting").text == "hello"
    # What the backend got: a signed PUT with the resource's identity and a stable key.
    put = calls(stack.backend, "PUT", rid)
    assert put and put[0]["signatureValid"], put
    assert put[0]["idempotencyKey"] == f"provision:{rid}"
    assert put[0]["body"]["installationId"] == iid and put[0]["body"]["plan"]["id"] == "kv-free"

    # Get and update (name, plan) reach the backend as B2, retried from the outbox.
    status, got = stack.sb.flow("get-resource", installationId=iid, resourceId=rid)
    assert got["response"]["status"] == "ready", got
    upd = stack.sb.run("update-resource", installationId=iid, resourceId=rid, name="cache-2",
                       billingPlanId="kv-pro")
    assert upd["response"]["name"] == "cache-2", upd
    wait_until(lambda: any(c["body"].get("name") == "cache-2" and c["body"].get("plan", {}).get("id") == "kv-pro"
                           for c in calls(stack.backend, "PATCH", rid)), what="B2 with the change")

    # Suspend and resume: the provider's service stops serving the resource, then serves it.
    stack.sb.run("update-resource", installationId=iid, resourceId=rid, status="suspended")
    wait_until(lambda: kv(secrets, "GET", "greeting").status_code == 403, what="suspended at the backend")
    stack.sb.run("update-resource", installationId=iid, resourceId=rid, status="resumed")
    wait_until(lambda: kv(secrets, "GET", "greeting").status_code == 200, what="resumed at the backend")

    # Rotation with a delay: new secrets at once, the old token keeps working meanwhile.
    rot = stack.sb.run("rotate-secrets", installationId=iid, resourceId=rid, delayOldSecretsExpirationHours=1)
    new = secrets_of(rot["response"])
    assert new["KV_REST_API_TOKEN"] != secrets["KV_REST_API_TOKEN"], rot
    assert kv(new, "GET", "greeting").status_code == 200
    assert kv(secrets, "GET", "greeting").status_code == 200
    # A short delay: the previous token stops working once it is over.
    rot = stack.sb.run("rotate-secrets", installationId=iid, resourceId=rid,
                       delayOldSecretsExpirationHours=0.001)  # 3.6 s
    newest = secrets_of(rot["response"])
    assert kv(new, "GET", "greeting").status_code == 200
    wait_until(lambda: kv(new, "GET", "greeting").status_code == 401, timeout=30,
               what="the previous token expires")
    assert kv(newest, "GET", "greeting").status_code == 200
    new = newest

    # The REPL is the backend's console, rendered as Vercel's blocks.
    status, out = stack.sb.flow("repl", installationId=iid, resourceId=rid, input="set colour blue")
    assert status == 200, out
    status, out = stack.sb.flow("repl", installationId=iid, resourceId=rid, input="keys")
    assert status == 200, out
    assert "colour" in json.dumps(out["response"]), out

    # Delete: answered at once, confirmed by the backend (B3), repeated delete succeeds.
    d = stack.sb.run("delete-resource", installationId=iid, resourceId=rid)
    assert d["ok"], d
    wait_until(lambda: calls(stack.backend, "DELETE", rid), what="B3")
    wait_until(lambda: kv(new, "GET", "greeting").status_code in (401, 404), what="gone at the backend")
    again = stack.sb.flow("delete-resource", installationId=iid, resourceId=rid)
    assert again[0] == 200, again


def test_backend_4xx_is_passed_through_with_its_user_message(stack):
    iid = stack.install()
    status, res = stack.provision(iid, name="far", metadata={"region": "mars"})
    assert res["status"] == 422, res
    err = res["response"]["error"]
    assert "mars" in err["user"]["message"], res
    # Not kept: Wharf's list of the installation's resources does not have it.
    status, listed = stack.sb.flow("list-resources", installationId=iid)
    assert listed["response"]["resources"] == [], listed


def test_backend_down_during_provision_finishes_later_and_pushes_secrets_once(tmp_path, wharf_bin):
    s = Stack(tmp_path, wharf_bin, provision_wait_ms=1500)
    try:
        s.backend.stop()
        iid = s.install()
        t0 = time.monotonic()
        status, res = s.provision(iid, name="later")
        assert status == 200 and res["ok"], res
        assert res["response"]["status"] == "pending" and not res["response"].get("secrets"), res
        assert time.monotonic() - t0 < 10
        rid = res["response"]["id"]
        s.backend.restart()
        wait_until(lambda: s.vercel_resource(iid, rid).get("secrets"), timeout=60,
                   what="secrets pushed to Vercel")
        rec = s.vercel_resource(iid, rid)
        assert {x["name"] for x in rec["secrets"]} >= {"KV_REST_API_URL", "KV_REST_API_TOKEN"}
        # Once: one Update Resource Secrets for the resource, and it stays.
        time.sleep(2)
        assert s.vercel_resource(iid, rid).get("secretsVersion") == 1
        # Wharf's own view (through the sandbox's Get Resource) is ready.
        status, g = s.sb.flow("get-resource", installationId=iid, resourceId=rid)
        assert g["response"]["status"] == "ready", g
        puts = calls(s.backend, "PUT", rid)
        assert len({c["idempotencyKey"] for c in puts}) == 1  # every retry the same key
    finally:
        s.close()


def test_async_provision_finishes_by_the_backends_callback(tmp_path, wharf_bin):
    s = Stack(tmp_path, wharf_bin, async_provision=True)
    try:
        iid = s.install()
        status, res = s.provision(iid, name="async")
        assert res["ok"] and res["response"]["status"] == "pending", res
        rid = res["response"]["id"]
        wait_until(lambda: s.vercel_resource(iid, rid).get("secrets"), timeout=30,
                   what="secrets from W1")
        status, g = s.sb.flow("get-resource", installationId=iid, resourceId=rid)
        assert g["response"]["status"] == "ready", g
    finally:
        s.close()


def test_delete_is_retried_until_the_backend_confirms(stack):
    iid = stack.install()
    status, res = stack.provision(iid, name="doomed")
    rid = res["response"]["id"]
    stack.backend.faults("DELETE", 503, count=2)
    d = stack.sb.run("delete-resource", installationId=iid, resourceId=rid)
    assert d["ok"], d
    deletes = wait_until(lambda: [c for c in calls(stack.backend, "DELETE", rid)
                                  if c["status"] in (200, 204)] and calls(stack.backend, "DELETE", rid),
                         timeout=60, what="B3 confirmed after two 503s")
    assert len(deletes) == 3, deletes
    assert len({c["idempotencyKey"] for c in deletes}) == 1


def test_slow_backend_on_delete_is_retried(tmp_path, wharf_bin):
    s = Stack(tmp_path, wharf_bin, timeout_ms=1000)
    try:
        iid = s.install()
        status, res = s.provision(iid, name="slow")
        rid = res["response"]["id"]
        s.backend.faults("DELETE", 0, count=1, delay_ms=2500)  # answers after Wharf gave up
        assert s.sb.run("delete-resource", installationId=iid, resourceId=rid)["ok"]
        wait_until(lambda: len(calls(s.backend, "DELETE", rid)) >= 2, timeout=60,
                   what="a second B3 after the timeout")
    finally:
        s.close()


def test_callbacks_need_a_valid_fresh_signature(stack):
    iid = stack.install()
    _, res = stack.provision(iid, name="signed")
    rid = res["response"]["id"]
    body = {"status": "ready"}
    assert stack.callback(f"resources/{rid}/status", body, header=False).status_code == 401
    assert stack.callback(f"resources/{rid}/status", body, secret="x" * 40).status_code == 401
    # A captured request replayed later than the tolerance is refused.
    assert stack.callback(f"resources/{rid}/status", body, t=int(time.time()) - 301).status_code == 401
    assert stack.callback(f"resources/{rid}/status", body, t=int(time.time()) + 301).status_code == 401
    assert stack.callback(f"resources/{rid}/status", body,
                          header="t=1,v1=" + "0" * 64).status_code == 401
    # Another product's name with this product's secret: unknown signature.
    assert stack.callback(f"resources/{rid}/status", body, product="sqlite-db").status_code == 401
    # A resource of another product (or none) is not this product's: 404.
    assert stack.callback("resources/res_nope/status", body).status_code == 404
    ok = stack.callback(f"resources/{rid}/status", body)
    assert ok.status_code == 200, ok.text


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_usage_is_counted_once_and_a_bad_batch_counts_nothing(stack):
    iid = stack.install()
    _, res = stack.provision(iid, name="metered", plan="kv-pro")
    rid = res["response"]["id"]
    events = [{"id": str(uuid.uuid4()), "resourceId": rid, "metric": "requests", "value": 1000,
               "type": "interval", "timestamp": now_iso()} for _ in range(5)]
    r = stack.callback("usage", {"events": events})
    assert r.status_code == 200 and r.json() == {"accepted": 5, "duplicates": 0}, r.text
    r = stack.callback("usage", {"events": events})  # retried batch
    assert r.status_code == 200 and r.json() == {"accepted": 0, "duplicates": 5}, r.text

    bad = [dict(events[0], id=str(uuid.uuid4())), dict(events[0], id=str(uuid.uuid4()), metric="bogus"),
           dict(events[0], id=str(uuid.uuid4()), value=-1),
           dict(events[0], id=str(uuid.uuid4()), timestamp="2001-01-01T00:00:00Z")]
    r = stack.callback("usage", {"events": bad})
    assert r.status_code == 422, r.text
    keys = {f["key"] for f in r.json()["error"]["fields"]}
    assert keys == {"events[1].metric", "events[2].value", "events[3].timestamp"}, r.text
    # Nothing of the refused batch counted: its good first event is accepted once sent alone.
    r = stack.callback("usage", {"events": bad[:1]})
    assert r.json() == {"accepted": 1, "duplicates": 0}, r.text

    # A level ("total") is the day's last value.
    for v in (10, 7):
        ev = {"id": str(uuid.uuid4()), "resourceId": rid, "metric": "storageBytes", "value": v,
              "type": "total", "timestamp": now_iso()}
        assert stack.callback("usage", {"events": [ev]}).status_code == 200

    # Usage flows into billing like the built-in products' (the interim statement's lines).
    r = wharf_cli(stack.w, "billing", "statement", "--installation", iid)
    assert r.returncode == 0, r.stderr
    statement = json.loads(r.stdout)
    lines = [item for item in json.dumps(statement).split("{") if '"requests"' in item]
    assert lines, statement
    assert "6000" in json.dumps(statement), statement  # 5 × 1000 once, plus the lone 1000


def test_dashboard_shows_what_the_product_offers(stack):
    """Open in Provider on an http resource: the backend's secrets by name, its console (not
    an SQL one), rotation since the backend rotates."""
    iid = stack.install()
    _, res = stack.provision(iid, name="dash")
    rid = res["response"]["id"]
    out = stack.sb.run("sso", installationId=iid)
    r = requests.get(out["redirectUrl"], allow_redirects=False, timeout=30)
    assert r.status_code == 303, r.text
    session = r.headers["Set-Cookie"].partition("=")[2].split(";")[0]
    page = requests.get(stack.w.url(f"/dashboard/resources/{rid}"),
                        cookies={"wharf_session": session}, timeout=30)
    assert page.status_code == 200, page.text
    assert "KV_REST_API_TOKEN" in page.text and "DATABASE_TOKEN" not in page.text
    assert "<h2>Console</h2>" in page.text and "SQL console" not in page.text
    assert 'id="rotate"' in page.text
