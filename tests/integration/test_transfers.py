"""Resource transfers through the real sandbox: a claim from installation A, verified and
accepted by B, moves the database with its data and credentials; A no longer sees it.
Both the current and the legacy shapes, expiry, and concurrent accepts."""
import concurrent.futures
import time

import pytest
import requests

from lib import api
from test_resources import provision, q, secrets_of


def system_token(sb, iid):
    return requests.post(sb.base + "/_sandbox/tokens", timeout=10,
                         json={"kind": "system", "installationId": iid}).json()["token"]


def installations(sb, n):
    ids = [api.new_installation_id() for _ in range(n)]
    for iid in ids:
        assert sb.run("install", installationId=iid)["ok"]
    return ids


@pytest.mark.parametrize("legacy", [False, True])
def test_transfer_moves_database_data_and_credentials(pair, legacy):
    sb, w = pair
    a, b = installations(sb, 2)
    res = provision(sb, a)
    rid, s = res["id"], secrets_of(res)
    assert q(s, {"statements": [{"sql": "create table kv(k text, v text)"},
                                {"sql": "insert into kv values ('k', 'moved')"}]}).status_code == 200

    created = sb.run("transfer-create", installationId=a, resourceIds=[rid], legacy=legacy)
    assert created["ok"] and created["findings"] == [], created
    claim = created.get("claimId") or created["response"]["providerClaimId"]
    verified = sb.run("transfer-verify", installationId=b, claimId=claim, legacy=legacy)
    assert verified["ok"] and verified["findings"] == [], verified
    accepted = sb.run("transfer-accept", installationId=b, claimId=claim, legacy=legacy)
    assert accepted["ok"] and accepted["findings"] == [], accepted

    # B owns it now: Get Resource under B works, under A it is gone.
    assert w.get(f"/v1/installations/{b}/resources/{rid}", system_token(sb, b)).status_code == 200
    assert w.get(f"/v1/installations/{a}/resources/{rid}", system_token(sb, a)).status_code == 404
    # The database, its data and its credentials came along.
    r = q(s, {"sql": "select v from kv"})
    assert r.status_code == 200 and r.json()["results"][0]["rows"] == [["moved"]], r.text
    # The completed claim: only the winner's repeat succeeds.
    again = sb.run("transfer-accept", installationId=b, claimId=claim, legacy=legacy)
    assert again["ok"], again
    c, = installations(sb, 1)
    late = sb.flow("transfer-verify", installationId=c, claimId=claim, legacy=legacy)
    assert late[0] != 200 or late[1]["status"] == 409, late


def test_only_owned_resources_and_expiry(pair):
    sb, w = pair
    a, b = installations(sb, 2)
    rid_b = provision(sb, b)["id"]
    token_a = system_token(sb, a)
    r = w.request("POST", f"/v1/installations/{a}/resource-transfer-requests", token_a,
                  json_body={"resourceIds": [rid_b], "expiresAt": int(time.time() * 1000) + 60000})
    assert r.status_code == 422, r.text
    assert "cannot be transferred" in r.json()["error"]["user"]["message"], r.text
    rid_a = provision(sb, a)["id"]
    r = w.request("POST", f"/v1/installations/{a}/resource-transfer-requests", token_a,
                  json_body={"resourceIds": [rid_a], "expiresAt": int(time.time() * 1000) + 1500})
    assert r.status_code == 200, r.text
    claim = r.json()["providerClaimId"]
    time.sleep(2)
    v = w.get(f"/v1/installations/{b}/resource-transfer-requests/{claim}/verify", system_token(sb, b))
    assert v.status_code == 409, v.text
    assert v.json()["error"]["user"]["message"] == "This claim link has expired. Ask for a new one.", v.text
    bad = w.request("POST", f"/v1/installations/{a}/resource-transfer-requests", token_a,
                    json_body={"resourceIds": "nope", "expiresAt": "soon"})
    assert bad.status_code == 400
    keys = {f["key"] for f in bad.json()["error"]["fields"]}
    assert {"resourceIds", "expiresAt"} <= keys


def test_concurrent_accepts_move_the_resource_once(pair):
    sb, w = pair
    a, b, c = installations(sb, 3)
    rid = provision(sb, a)["id"]
    token_a = system_token(sb, a)
    claim = w.request("POST", f"/v1/installations/{a}/resource-transfer-requests", token_a,
                      json_body={"resourceIds": [rid],
                                 "expiresAt": int(time.time() * 1000) + 60000}).json()["providerClaimId"]
    tokens = {t: system_token(sb, t) for t in (b, c)}
    for t in (b, c):
        assert w.get(f"/v1/installations/{t}/resource-transfer-requests/{claim}/verify",
                     tokens[t]).status_code == 200

    def accept(t):
        return t, w.request("POST", f"/v1/installations/{t}/resource-transfer-requests/{claim}/accept",
                            tokens[t]).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(accept, [b, c] * 4))
    winners = {t for t, status in results if status == 204}
    assert len(winners) == 1, results
    winner = winners.pop()
    loser = c if winner == b else b
    assert all(status == 409 for t, status in results if t == loser), results
    assert w.get(f"/v1/installations/{winner}/resources/{rid}", tokens[winner]).status_code == 200
    assert w.get(f"/v1/installations/{loser}/resources/{rid}", tokens[loser]).status_code == 404


class _KeepsResourcesPartner:
    """A broken partner: it accepts a transfer (204) but keeps listing nothing under the
    target installation — the sandbox must say so after the accept."""

    def __init__(self):
        import http.server
        import json as _json
        import threading

        resource = {"id": "res_kept", "productId": "sqlite-db", "name": "kept", "metadata": {},
                    "status": "ready", "secrets": [{"name": "DATABASE_URL", "value": "x"}]}

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body=None):
                data = b"" if body is None else _json.dumps(body).encode()
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n)

            def do_PUT(self):
                self.body()
                self.reply(204)

            def do_POST(self):
                self.body()
                if self.path.endswith("/resources"):
                    self.reply(200, resource)
                elif self.path.endswith("/resource-transfer-requests"):
                    self.reply(200, {"providerClaimId": "claim_kept"})
                else:
                    self.reply(204)

            def do_GET(self):
                if self.path.endswith("/verify"):
                    self.reply(200, {"billingPlan": None})
                elif self.path.endswith("/resources"):
                    self.reply(200, {"resources": []})
                else:
                    self.reply(200, resource)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_sandbox_reports_a_partner_that_keeps_an_accepted_resource(tmp_path):
    from lib.sandbox import Sandbox, sandbox_bin
    partner = _KeepsResourcesPartner()
    sb = Sandbox(sandbox_bin(), tmp_path / "sb", partner.url).start()
    try:
        a, b = installations(sb, 2)
        sb.flow("provision", installationId=a, productId="sqlite-db", name="kept", metadata={},
                billingPlanId="sqlite-free")
        _, created = sb.flow("transfer-create", installationId=a, resourceIds=["res_kept"])
        claim = created["response"]["providerClaimId"]
        sb.flow("transfer-verify", installationId=b, claimId=claim)
        _, accepted = sb.flow("transfer-accept", installationId=b, claimId=claim)
        assert accepted["moved"] == ["res_kept"], accepted
        assert any("res_kept is not listed under the target installation" in f
                   for f in accepted["findings"]), accepted["findings"]
    finally:
        sb.stop()
        partner.close()
