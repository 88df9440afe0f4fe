"""The sandbox's own strictness, as a partner would meet it: its Vercel API refuses what
Vercel would refuse and says precisely why, and partner responses that break the spec are
reported naming the field. The partner here is a small scripted HTTP server, so each test
can make it misbehave in one exact way."""
import hashlib
import hmac
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from lib import api
from lib.sandbox import SANDBOX_CLIENT_SECRET, Sandbox, sandbox_bin

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class ScriptedPartner:
    """Answers each (method, path prefix) with a scripted (status, body); records requests."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        partner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                partner.requests.append((self.command, self.path, dict(self.headers), body))
                status, payload, ctype = 404, b'{"error":{"code":"not_found","message":"x"}}', "application/json"
                for (m, prefix), answer in sorted(partner.routes.items(), key=lambda kv: -len(kv[0][1])):
                    if m == self.command and self.path.startswith(prefix):
                        status, payload = answer(body) if callable(answer) else answer
                        if isinstance(payload, (dict, list)):
                            payload = json.dumps(payload).encode()
                        break
                self.send_response(status)
                if payload:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload or b"")))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def partner():
    p = ScriptedPartner()
    p.routes[("PUT", "/v1/installations/")] = (200, {"notification": None})
    yield p
    p.close()


@pytest.fixture(scope="module")
def sb(partner, tmp_path_factory):
    s = Sandbox(sandbox_bin(), tmp_path_factory.mktemp("strict"), partner.url,
                env={"SANDBOX_WEBHOOK_URL": partner.url + "/webhooks/vercel"}).start()
    yield s
    s.stop()


@pytest.fixture
def installation(sb):
    iid = api.new_installation_id()
    res = sb.run("install", installationId=iid)
    assert res["ok"], res
    return iid, sb.access_token(iid)


def period_now():
    now = time.time()
    start = time.strftime("%Y-%m-01T00:00:00Z", time.gmtime(now))
    end = time.strftime("%Y-%m-%dT23:59:59Z", time.gmtime(now + 20 * 86400))
    eod = time.strftime("%Y-%m-%dT23:59:59Z", time.gmtime(now))
    return start, end, eod


def billing_body():
    start, end, eod = period_now()
    return {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "eod": eod,
        "period": {"start": start, "end": end},
        "billing": [{"billingPlanId": "sqlite-pro", "resourceId": "res_1", "name": "Base fee",
                     "price": "5.00", "quantity": 1, "units": "month", "total": "5.00"}],
        "usage": [{"resourceId": "res_1", "name": "Storage", "type": "total", "units": "GB",
                   "dayValue": 1.5, "periodValue": 1.5, "planValue": 10}],
    }


def invoice_body(external_id):
    start, end, _ = period_now()
    return {"externalId": external_id, "invoiceDate": start.replace("T00:00:00Z", "T12:00:00Z"),
            "period": {"start": start, "end": end},
            "items": [{"billingPlanId": "sqlite-pro", "resourceId": "res_1", "name": "Base fee",
                       "price": "5.00", "quantity": 1, "units": "month", "total": "5.00"}],
            "test": {"validate": True, "result": "paid"}}


def test_wrong_or_foreign_access_token(sb, installation):
    iid, token = installation
    other_iid, other_token = api.new_installation_id(), None
    sb.run("install", installationId=other_iid)
    other_token = sb.access_token(other_iid)
    assert sb.vercel("GET", f"/v1/installations/{iid}/account", token).status_code == 200
    r = sb.vercel("GET", f"/v1/installations/{iid}/account", "vat_not-a-token")
    assert r.status_code == 401 and r.json()["error"]["code"]
    r = sb.vercel("GET", f"/v1/installations/{iid}/account")
    assert r.status_code == 401
    r = sb.vercel("GET", f"/v1/installations/{iid}/account", other_token)
    assert r.status_code == 403 and r.json()["error"]["code"]


def test_billing_data_is_validated_precisely(sb, installation):
    iid, token = installation
    ok = sb.vercel("POST", f"/v1/installations/{iid}/billing", token, billing_body())
    assert ok.status_code == 201, ok.text

    def bad(mutate, expect_in_message):
        body = billing_body()
        mutate(body)
        r = sb.vercel("POST", f"/v1/installations/{iid}/billing", token, body)
        assert r.status_code == 400, (expect_in_message, r.text)
        err = r.json()["error"]
        assert err["code"] and expect_in_message in err["message"], err
        return err

    bad(lambda b: b.pop("eod"), "eod")
    bad(lambda b: b["billing"][0].update(total="5,00"), "billing[0].total")
    bad(lambda b: b["usage"][0].update(type="sometimes"), "usage[0].type")
    bad(lambda b: b.update(eod="2001-01-01T00:00:00Z"), "eod")
    bad(lambda b: b.update(extra=True), "extra")
    r = sb.vercel("POST", f"/v1/installations/{iid}/billing", token, data="{nope",
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    days = sb.state()["billing"][iid]
    assert len(days) == 1  # only the valid submission was kept


def test_invoice_external_id_is_unique_per_installation(sb, installation):
    iid, token = installation
    first = sb.vercel("POST", f"/v1/installations/{iid}/billing/invoices", token, invoice_body("inv-1"))
    assert first.status_code == 200, first.text
    invoice_id = first.json()["invoiceId"]
    dup = sb.vercel("POST", f"/v1/installations/{iid}/billing/invoices", token, invoice_body("inv-1"))
    assert dup.status_code == 409, dup.text
    assert "inv-1" in dup.json()["error"]["message"]
    got = sb.vercel("GET", f"/v1/installations/{iid}/billing/invoices/{invoice_id}", token)
    assert got.status_code == 200 and got.json()["state"] == "paid" and got.json()["total"] == "5.00"


def test_partner_response_missing_a_required_field_is_reported(sb, partner, installation):
    iid, _ = installation
    partner.routes[("GET", f"/v1/installations/{iid}/plans")] = (200, {"plans": [{"id": "x", "name": "X"}]})
    res = sb.run("plans", installationId=iid)
    assert not res["ok"] or res["findings"], res
    joined = "\n".join(res["findings"])
    assert "plans[0].type" in joined and "plans[0].description" in joined, joined
    ex = sb.exchange(res["exchanges"][-1])
    assert ex["conformant"] is False and ex["findings"]


def test_malformed_partner_responses_never_crash_the_sandbox(sb, partner, installation):
    iid, _ = installation
    for status, body in [(200, b"\x00\xff not json"), (200, b""), (500, b"<html>"), (200, b"[1,2")]:
        partner.routes[("GET", f"/v1/installations/{iid}")] = (status, body)
        res = sb.run("get-installation", installationId=iid)
        assert res["findings"], (status, body, res)
    assert sb.proc.poll() is None
    assert requests.get(sb.base + "/_sandbox/config", timeout=10).status_code == 200


def test_webhooks_are_signed_and_retried(sb, partner, installation):
    iid, _ = installation
    attempts = []

    def flaky(body):
        if json.loads(body).get("type") != "integration-configuration.removed":
            return (200, {})
        attempts.append(body)
        return (500, {"error": {"code": "x", "message": "down"}}) if len(attempts) < 3 else (200, {})

    partner.routes[("POST", "/webhooks/vercel")] = flaky
    res = sb.run("webhook", type="integration-configuration.removed", installationId=iid)
    deadline = time.time() + 30
    while time.time() < deadline and len(attempts) < 3:
        time.sleep(0.1)
    assert len(attempts) >= 3
    hooks = [r for r in partner.requests if r[1] == "/webhooks/vercel" and r[3] == attempts[-1]]
    method, path, headers, body = hooks[-1]
    sig = {k.lower(): v for k, v in headers.items()}["x-vercel-signature"]
    assert sig == hmac.new(SANDBOX_CLIENT_SECRET.encode(), body, hashlib.sha1).hexdigest()
    event = json.loads(body)
    assert event["type"] == "integration-configuration.removed"
    assert event["payload"]["configuration"]["id"] == iid
    assert len({json.loads(b)["id"] for b in attempts}) == 1  # retries keep the delivery id
    _ = res


def test_bad_signature_accepted_by_partner_is_reported(sb, partner, installation):
    iid, _ = installation
    partner.routes[("POST", "/webhooks/vercel")] = (200, {})
    res = sb.run("webhook", type="integration-configuration.removed", installationId=iid,
                 signature="bad")
    deadline = time.time() + 10
    finding = None
    while time.time() < deadline and not finding:
        for e in sb.log():
            if e["direction"] == "webhook" and e["findings"] and "signature" in " ".join(e["findings"]):
                finding = e
        time.sleep(0.1)
    assert finding, res
