"""Vercel's webhooks into wharf, sent by the real sandbox (signed with the client secret)
and by hand: signature checks, de-duplication by id, unknown types kept, and
integration-configuration.removed uninstalling with its resources. Also Delete
Installation's cascade into resources."""
import glob
import hashlib
import hmac
import json
import os

import requests

from lib import api
from lib.sandbox import SANDBOX_CLIENT_SECRET
from test_resources import provision, q, secrets_of


def system_token(sb, iid):
    return requests.post(sb.base + "/_sandbox/tokens", timeout=10,
                         json={"kind": "system", "installationId": iid}).json()["token"]


def post_hook(w, body, secret=SANDBOX_CLIENT_SECRET, signature=None):
    raw = json.dumps(body).encode()
    sig = signature if signature is not None else hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()
    headers = {"Content-Type": "application/json"}
    if sig:
        headers["x-vercel-signature"] = sig
    return requests.post(w.url("/webhooks/vercel"), data=raw, headers=headers, timeout=10)


def test_signatures_duplicates_and_unknown_types(pair):
    sb, w = pair
    body = {"id": "whd_" + api.new_installation_id(), "type": "deployment.created",
            "createdAt": 1, "payload": {"deployment": {"id": "dpl_1"}}}
    assert post_hook(w, body, signature="").status_code == 401
    assert post_hook(w, body, secret="wrong").status_code == 401
    first = post_hook(w, body)
    assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False}
    again = post_hook(w, body)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    bad = post_hook(w, {"nope": 1})
    assert bad.status_code == 400


def test_removed_webhook_from_the_sandbox_uninstalls_with_resources(pair):
    sb, w = pair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    rid = provision(sb, iid)["id"]
    res = sb.run("webhook", type="integration-configuration.removed", installationId=iid)
    assert res["ok"] and res["status"] == 200 and res["findings"] == [], res
    token = system_token(sb, iid)
    assert w.get(f"/v1/installations/{iid}", token).status_code == 404
    assert glob.glob(os.path.join(w.data_dir, "databases", rid + "*")) == []
    # A deliberately bad signature is refused, and the sandbox finds that conformant.
    bad = sb.run("webhook", type="integration-configuration.removed", installationId=iid,
                 signature="bad")
    assert bad["status"] == 401 and bad["findings"] == [], bad


def test_delete_installation_cascades_and_counts_paid_resources(pair):
    sb, w = pair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    free = provision(sb, iid)
    paid = provision(sb, iid, plan="sqlite-pro")
    gone = sb.run("uninstall", installationId=iid, cascadeResourceDeletion=True, webhook=False)
    # Seconds of sqlite-pro cost less than Vercel's $0.50 minimum: nothing is owed. (Days of it
    # are: test_billing.py::test_uninstall_sends_the_final_invoice_then_finalizes.)
    assert gone["ok"] and gone["response"] == {"finalized": True}, gone
    for r in (free, paid):
        assert glob.glob(os.path.join(w.data_dir, "databases", r["id"] + "*")) == []
        assert q(secrets_of(r), {"sql": "select 1"}).status_code in (401, 404)
