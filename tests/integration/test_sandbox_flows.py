"""wharf and wharf-sandbox as real processes, wired as Vercel and partner on loopback: every
flow Wharf implements so far, performed by the sandbox and checked on both sides."""
import base64
import json

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from lib import api
from lib import catalog as lib_catalog
from lib.billing import DAY, advance, start_billing_pair
from lib.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, start_pair



def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_with_jwks(token, jwks):
    header, payload, sig = token.split(".")
    hdr = json.loads(b64url_decode(header))
    key = next(k for k in jwks["keys"] if k["kid"] == hdr["kid"])
    n = int.from_bytes(b64url_decode(key["n"]), "big")
    e = int.from_bytes(b64url_decode(key["e"]), "big")
    rsa.RSAPublicNumbers(e, n).public_key().verify(
        b64url_decode(sig), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return json.loads(b64url_decode(payload))


def test_identity_documents(pair):
    sb, _ = pair
    cfg = requests.get(sb.base + "/.well-known/openid-configuration", timeout=10).json()
    assert cfg["issuer"] == sb.base
    assert cfg["jwks_uri"] == sb.base + "/.well-known/jwks"
    jwks = requests.get(cfg["jwks_uri"], timeout=10).json()
    assert jwks["keys"][0]["kty"] == "RSA" and jwks["keys"][0]["alg"] == "RS256"


def test_install_then_wharf_knows_the_installation(pair):
    sb, w = pair
    iid = api.new_installation_id()
    res = sb.run("install", installationId=iid)
    assert res["ok"], res
    assert res["status"] == 200
    assert res["findings"] == []
    assert res["response"] == {"notification": None}
    inst = sb.state()["installations"][iid]
    assert inst["status"] == "active"
    assert inst["accessTokens"]

    got = sb.run("get-installation", installationId=iid)
    assert got["ok"] and got["status"] == 200, got

    # The exchange log has the Upsert with Vercel's headers, the token redacted.
    ex = sb.exchange(res["exchanges"][0])
    assert ex["direction"] == "to-partner" and ex["method"] == "PUT"
    assert ex["url"].endswith(f"/v1/installations/{iid}")
    headers = {k.lower(): v for k, v in ex["requestHeaders"].items()}
    assert headers["x-vercel-auth"] == "user"
    assert "idempotency-key" in headers
    assert not headers["authorization"].startswith("Bearer ey")


def test_reinstall_replaces_credentials(pair):
    sb, w = pair
    iid = api.new_installation_id()
    assert sb.run("install", installationId=iid)["ok"]
    again = sb.run("install", installationId=iid)
    assert again["ok"] and again["status"] == 200, again
    assert sb.run("get-installation", installationId=iid)["ok"]


def test_plans_before_and_after_install(pair):
    sb, w = pair
    product = sb.run("plans", productId="sqlite-db")
    assert product["ok"] and product["findings"] == [], product
    assert [p["id"] for p in product["response"]["plans"]] == [
        "sqlite-free", "sqlite-pro", "sqlite-credits"]
    for p in product["response"]["plans"]:
        assert "pricing" not in p and "limits" not in p

    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    inst = sb.run("plans", installationId=iid, metadata={"durability": "full"})
    # The installation's plans: sqlite-db's three and the flags product's two.
    assert inst["ok"] and len(inst["response"]["plans"]) == 5, inst

    bad = sb.run("plans", productId="sqlite-db", metadata={"durability": "fast"})
    assert not bad["ok"] and bad["status"] == 400
    assert bad["response"]["error"]["fields"][0]["key"] == "durability"


def test_uninstall_free_installation_is_finalized(pair):
    sb, w = pair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    res = sb.run("uninstall", installationId=iid, cascadeResourceDeletion=True, reason="test")
    assert res["ok"] and res["response"] == {"finalized": True}, res
    assert sb.state()["installations"][iid]["status"] == "finalized"
    # The finalized installation's token no longer works on the sandbox's Vercel API.
    r = sb.vercel("GET", f"/v1/installations/{iid}/account", sb.state()["installations"][iid]["accessTokens"][0])
    assert r.status_code == 401
    # The sandbox, like Vercel, no longer calls the partner for it; wharf has forgotten it.
    status, body = sb.flow("get-installation", installationId=iid)
    assert status == 409 and body["error"]["fields"][0]["key"] == "installationId"
    token = requests.post(sb.base + "/_sandbox/tokens", timeout=10,
                          json={"kind": "system", "installationId": iid}).json()["token"]
    assert w.get(f"/v1/installations/{iid}", token).status_code == 404


def test_installation_level_billing_plan_change(wharf_bin, tmp_path):
    catalog = lib_catalog.TEAM_PLANS
    sb, w = start_billing_pair(tmp_path, wharf_bin, catalog)
    try:
        iid = api.new_installation_id()
        res = sb.run("install", installationId=iid)
        assert res["response"]["billingPlan"]["id"] == "team-free"
        change = sb.run("change-plan", installationId=iid, billingPlanId="team-pro")
        assert change["ok"] and change["response"]["billingPlan"]["id"] == "team-pro", change
        got = sb.run("get-installation", installationId=iid)
        assert got["response"]["billingPlan"]["id"] == "team-pro"
        # Ten days of a paid plan are owed: not finalized, the installation waits in pending
        # deletion (for the final invoice).
        advance(sb, w, 10 * DAY)
        gone = sb.run("uninstall", installationId=iid)
        assert gone["response"] == {"finalized": False}
        assert sb.state()["installations"][iid]["status"] == "pending_deletion"
    finally:
        w.stop()
        sb.stop()


def test_sso_code_exchange_is_single_use_and_verifiable(pair):
    sb, w = pair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    res = sb.run("sso", installationId=iid, path="billing")
    url = res["redirectUrl"]
    assert url.startswith(f"{w.url('')}/sso/callback?") or "/sso/callback?" in url
    q = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))
    assert q["mode"] == "sso" and q["code"] and q["state"] and q["path"] == "billing"

    body = {"code": q["code"], "state": q["state"], "client_id": SANDBOX_CLIENT_ID,
            "client_secret": SANDBOX_CLIENT_SECRET, "grant_type": "authorization_code"}
    r = sb.vercel("POST", "/v1/integrations/sso/token", json_body=body)
    assert r.status_code == 200, r.text
    claims = verify_with_jwks(r.json()["id_token"],
                              requests.get(sb.base + "/.well-known/jwks", timeout=10).json())
    assert claims["installation_id"] == iid and claims["aud"] == SANDBOX_CLIENT_ID
    assert claims["iss"] == sb.base and claims["user_role"] == "ADMIN"
    again = sb.vercel("POST", "/v1/integrations/sso/token", json_body=body)
    assert again.status_code == 400, again.text
    assert again.json()["error"]["code"]


def test_control_api_rejects_bad_input(pair):
    sb, _ = pair
    status, body = sb.flow("install", installationId=12)
    assert status == 400 and body["error"]["fields"][0]["key"] == "installationId", body
    status, body = sb.flow("no-such-flow")
    assert status == 404 and body["error"]["code"]
    r = requests.post(sb.base + "/_sandbox/flows/install", data="{not json",
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"]


def test_inspector_and_cli(pair):
    sb, _ = pair
    r = requests.get(sb.base + "/_sandbox/inspector", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "Exchange log" in r.text and "Invoices" in r.text
    out = sb.cli("plans", "--productId", "sqlite-db")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["response"]["plans"][0]["id"] == "sqlite-free"
    bad = sb.cli("get-installation", "--installationId", "icfg_unknown000000000000000")
    assert bad.returncode == 1


def test_prepayment_balances_are_kept_per_resource(pair):
    """Submit Prepayment Balances naming one resource leaves the others' balances (a second
    Provision Purchase reports only its own resource)."""
    sb, _ = pair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    token = sb.access_token(iid)
    path = f"/v1/installations/{iid}/billing/balance"

    def submit(ts, *entries):
        body = {"timestamp": ts, "balances": [
            {"resourceId": rid, "currencyValueInCents": cents, "credit": f"{cents} credits",
             "nameLabel": "Credits"} for rid, cents in entries]}
        r = sb.vercel("POST", path, token=token, json_body=body)
        assert r.status_code == 201, r.text

    def cents():
        return {b["resourceId"]: b["currencyValueInCents"] for b in sb.state()["balances"][iid]["balances"]}

    submit("2026-12-01T10:00:00.000Z", ("res_a", 500))
    submit("2026-12-01T11:00:00.000Z", ("res_b", 900))
    assert cents() == {"res_a": 500, "res_b": 900}
    submit("2026-12-01T12:00:00.000Z", ("res_a", 450))
    assert cents() == {"res_a": 450, "res_b": 900}
    submit("2026-12-01T09:00:00.000Z", ("res_b", 1))  # older than what res_b has: ignored
    assert cents() == {"res_a": 450, "res_b": 900}


def test_cli_parameters_take_the_flow_s_own_types(pair):
    """`wharf-sandbox <flow> --param value`: the text becomes what the flow's parameter is —
    a numeric name stays a string, an object or a number is parsed — never a guess."""
    sb, _ = pair
    iid = api.new_installation_id()
    assert sb.cli("install", "--installationId", iid).returncode == 0
    out = sb.cli("provision", "--installationId", iid, "--productId", "sqlite-db", "--name",
                 "12345", "--billingPlanId", "sqlite-free", "--metadata", '{"durability":"normal"}')
    assert out.returncode == 0, out.stdout + out.stderr
    body = json.loads(out.stdout)
    assert body["response"]["name"] == "12345" and body["response"]["metadata"] == {"durability": "normal"}
    rid = body["response"]["id"]
    out = sb.cli("update-resource", "--installationId", iid, "--resourceId", rid, "--name", "007")
    assert out.returncode == 0 and json.loads(out.stdout)["response"]["name"] == "007", out.stdout
    out = sb.cli("rotate-secrets", "--installationId", iid, "--resourceId", rid,
                 "--delayOldSecretsExpirationHours", "1", "--reason", "42")
    assert out.returncode == 0, out.stdout + out.stderr
    # Text that does not fit the type is refused naming the parameter.
    out = sb.cli("provision", "--installationId", iid, "--productId", "sqlite-db", "--name", "x",
                 "--billingPlanId", "sqlite-free", "--metadata", "not json")
    assert out.returncode != 0 and "metadata" in out.stdout + out.stderr
