"""The `flags` product kind through the real wharf-sandbox: flag sets managed with the admin key,
mirrored to Vercel as experimentation items (Create in batches of ≤ 50, Patch, Delete), synced
to the user's Global Config (conditional writes, 412 convergence, the legacy edge-config path,
409 stops syncing), evaluated over OFREP by raw HTTP and by the real OpenFeature SDK's OFREP
provider, metered in the usage ledger, and reached from Vercel by SSO deep link."""
import json
import os
import shutil
import subprocess
import time
from urllib.parse import urlsplit

import pytest
import requests

from lib import api
from lib.billing import wait_until, wharf_cli
from lib.sandbox import add_faults, clear_faults, start_pair

CLIENTS_DIR = os.path.join(os.path.dirname(__file__), "..", "clients")

CHECKOUT = {
    "key": "new-checkout",
    "type": "boolean",
    "name": "New checkout",
    "description": "The redesigned checkout",
    "variants": {"on": True, "off": False},
    "defaultVariant": "off",
    "rules": [{"conditions": [{"attribute": "country", "operator": "in", "values": ["NL", "DE"]}],
               "variant": "on"}],
}
BANNER = {
    "key": "banner-text",
    "type": "string",
    "variants": {"a": "Hello", "b": "Welcome back"},
    "defaultVariant": "a",
    "rules": [{"conditions": [{"attribute": "appVersion", "operator": "semver_gte",
                               "value": "2.0.0"}], "variant": "b"}],
}
LIMIT = {"key": "upload-limit", "type": "number", "variants": {"small": 10, "big": 250},
         "defaultVariant": "small",
         "rules": [{"conditions": [{"attribute": "plan", "operator": "equals", "value": "pro"}],
                    "variant": "big"}]}
THEME = {"key": "theme", "type": "object",
         "variants": {"light": {"bg": "#fff"}, "dark": {"bg": "#000"}}, "defaultVariant": "light",
         "rollout": {"variants": [{"variant": "dark", "weight": 50}, {"variant": "light", "weight": 50}]}}


@pytest.fixture(scope="module")
def pair(wharf_bin, tmp_path_factory):
    sb, w = start_pair(tmp_path_factory.mktemp("flags"), wharf_bin)
    yield sb, w
    w.stop()
    sb.stop()


def install(sb):
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    return iid


def provision(sb, iid, plan="flags-free", **extra):
    status, res = sb.flow("provision", installationId=iid, productId="flags", name="flags",
                          metadata={}, billingPlanId=plan, **extra)
    assert status == 200 and res["ok"], res
    body = res["response"]
    return body["id"], {s["name"]: s["value"] for s in body["secrets"]}, body


class Admin:
    """The provider API with the resource's FLAGS_ADMIN_KEY."""

    def __init__(self, secrets, key=None):
        self.base = secrets["FLAGS_URL"]
        self.h = {"Authorization": f"Bearer {key or secrets['FLAGS_ADMIN_KEY']}"}

    def __call__(self, method, path="", body=None):
        return requests.request(method, self.base + "/flags" + path, json=body, headers=self.h,
                                timeout=30)


def ofrep(secrets, key=None, context=None, token=None, headers=None):
    path = "/ofrep/v1/evaluate/flags" + (f"/{key}" if key else "")
    h = {"Authorization": f"Bearer {token or secrets['FLAGS_SDK_KEY']}"}
    h.update(headers or {})
    return requests.post(secrets["FLAGS_URL"] + path, json={"context": context or {}}, headers=h,
                         timeout=30)


def vercel_items(sb, iid, rid):
    return sb.state().get("experimentation", {}).get(iid, {}).get(rid, {}).get("items", {})


def global_config(sb, iid, rid):
    return sb.state().get("experimentation", {}).get(iid, {}).get(rid, {}).get("globalConfig")


def mark(sb):
    """The exchange log's latest id: calls after it are the ones that follow."""
    log = sb.log()
    return log[-1]["id"] if log else 0


def calls(sb, after, method, path_suffix):
    """Wharf's calls to the sandbox's Vercel API after `after`: (status, request body, path)."""
    out = []
    for e in sb.log(after):
        path = urlsplit(e["url"]).path
        if e["method"] == method and path.endswith(path_suffix):
            body = e.get("requestBody")
            if isinstance(body, str) and body:
                body = json.loads(body)
            out.append((e["status"], body, path))
    return out


def definitions(admin):
    """The flag set as the provider API lists it, as written to the Global Config."""
    r = admin("GET")
    assert r.status_code == 200, r.text
    out = {}
    for f in r.json()["flags"]:
        out[f["key"]] = {k: v for k, v in f.items() if k not in ("id", "createdAt", "updatedAt", "url")}
    return {"flags": out}


def test_provision_gives_flag_secrets_and_the_admin_api_validates(pair):
    sb, w = pair
    iid = install(sb)
    rid, secrets, body = provision(sb, iid)
    assert set(secrets) == {"FLAGS_URL", "FLAGS_ADMIN_KEY", "FLAGS_SDK_KEY"}
    assert secrets["FLAGS_URL"] == w.url(f"/v1/flags/{rid}")
    admin = Admin(secrets)
    r = admin("POST", body=CHECKOUT)
    assert r.status_code == 201, r.text
    flag = r.json()
    assert flag["id"].startswith("flg_") and flag["enabled"] is True and flag["archived"] is False
    assert admin("POST", body=CHECKOUT).status_code == 409  # the key exists

    # A malformed flag: every problem named, nothing created.
    bad = {"key": "bad flag", "type": "boolean", "variants": {"on": "yes"}, "defaultVariant": "x",
           "rules": [{"conditions": [{"attribute": "v", "operator": "semver_gt", "value": "1.x"},
                                     {"attribute": "e", "operator": "matches", "value": "("}],
                      "variant": "on"}], "colour": "red"}
    r = admin("POST", body=bad)
    assert r.status_code == 400, r.text
    keys = {f["key"] for f in r.json()["error"]["fields"]}
    assert {"key", "variants.on", "defaultVariant", "rules[0].conditions[0].value",
            "rules[0].conditions[1].value", "colour"} <= keys, r.text
    # A batch is all or none.
    r = admin("POST", body={"flags": [BANNER, dict(LIMIT, defaultVariant="nope")]})
    assert r.status_code == 400 and r.json()["error"]["fields"][0]["key"].startswith("flags[1]")
    assert [f["key"] for f in admin("GET").json()["flags"]] == ["new-checkout"]

    # The SDK key evaluates only; another resource's key or garbage is refused.
    sdk = Admin(secrets, key=secrets["FLAGS_SDK_KEY"])
    assert sdk("GET").status_code == 403 and sdk("POST", body=BANNER).status_code == 403
    assert Admin(secrets, key="wfl_nope")("GET").status_code == 401
    _, other, _ = provision(sb, iid)
    assert ofrep(secrets, "new-checkout", token=other["FLAGS_SDK_KEY"]).status_code == 401

    # Patch: members merged, the key cannot change, null removes an optional member.
    r = admin("PATCH", "/new-checkout", {"name": "Checkout v2", "key": "renamed"})
    assert r.status_code == 400 and r.json()["error"]["fields"][0]["key"] == "key"
    r = admin("PATCH", "/new-checkout", {"name": "Checkout v2", "rules": None})
    assert r.status_code == 200 and r.json()["name"] == "Checkout v2" and r.json()["rules"] == []
    assert admin("PATCH", "/missing", {"name": "x"}).status_code == 404
    assert admin("DELETE", "/new-checkout").status_code == 204
    assert admin("DELETE", "/new-checkout").status_code == 404


def test_ofrep_evaluation_by_raw_http(pair):
    sb, _ = pair
    iid = install(sb)
    _, secrets, _ = provision(sb, iid, plan="flags-pro")
    admin = Admin(secrets)
    assert admin("POST", body={"flags": [CHECKOUT, BANNER, LIMIT, THEME]}).status_code == 201

    r = ofrep(secrets, "new-checkout", {"targetingKey": "u1", "country": "NL"})
    assert r.status_code == 200, r.text
    assert r.json() == {"key": "new-checkout", "value": True, "variant": "on",
                        "reason": "TARGETING_MATCH", "metadata": {}}
    r = ofrep(secrets, "new-checkout", {"targetingKey": "u1", "country": "US"})
    assert r.json()["value"] is False and r.json()["reason"] == "DEFAULT"
    r = ofrep(secrets, "nope", {})
    assert r.status_code == 404 and r.json()["errorCode"] == "FLAG_NOT_FOUND"
    r = ofrep(secrets, "theme", {})  # a rollout needs the targeting key
    assert r.status_code == 400 and r.json()["errorCode"] == "TARGETING_KEY_MISSING"
    r = requests.post(secrets["FLAGS_URL"] + "/ofrep/v1/evaluate/flags/theme",
                      json={"context": [1]}, timeout=30,
                      headers={"Authorization": f"Bearer {secrets['FLAGS_SDK_KEY']}"})
    assert r.status_code == 400 and r.json()["errorCode"] == "INVALID_CONTEXT"

    # The same user always lands on the same side of a rollout.
    seen = {ofrep(secrets, "theme", {"targetingKey": "user-42"}).json()["variant"] for _ in range(5)}
    assert len(seen) == 1
    sides = {ofrep(secrets, "theme", {"targetingKey": f"user-{i}"}).json()["variant"]
             for i in range(40)}
    assert sides == {"dark", "light"}

    # Bulk: every flag, an ETag, 304 while neither the flags nor the context change.
    ctx = {"targetingKey": "u7", "plan": "pro", "appVersion": "2.1.0"}
    r = ofrep(secrets, context=ctx)
    assert r.status_code == 200, r.text
    by_key = {f["key"]: f for f in r.json()["flags"]}
    assert by_key["upload-limit"]["value"] == 250 and by_key["banner-text"]["value"] == "Welcome back"
    etag = r.headers["ETag"]
    again = ofrep(secrets, context=ctx, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["ETag"] == etag
    assert ofrep(secrets, context=dict(ctx, plan="free"),
                 headers={"If-None-Match": etag}).status_code == 200
    assert admin("PATCH", "/upload-limit", {"enabled": False}).status_code == 200
    changed = ofrep(secrets, context=ctx, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    flag = {f["key"]: f for f in changed.json()["flags"]}["upload-limit"]
    assert flag["value"] == 10 and flag["reason"] == "DISABLED"


def test_openfeature_sdk_with_the_ofrep_provider(pair):
    sb, _ = pair
    assert os.path.isdir(os.path.join(CLIENTS_DIR, "node_modules", "@openfeature", "ofrep-provider")), \
        "run scripts/install-deps.sh (npm ci in tests/clients)"
    iid = install(sb)
    _, secrets, _ = provision(sb, iid)
    assert Admin(secrets)("POST", body={"flags": [CHECKOUT, BANNER, LIMIT, THEME]}).status_code == 201
    cases = [
        {"name": "match", "kind": "boolean", "key": "new-checkout", "default": False,
         "context": {"targetingKey": "u1", "country": "DE"}},
        {"name": "no-match", "kind": "boolean", "key": "new-checkout", "default": True,
         "context": {"targetingKey": "u1", "country": "FR"}},
        {"name": "semver", "kind": "string", "key": "banner-text", "default": "x",
         "context": {"targetingKey": "u1", "appVersion": "10.0.0"}},
        {"name": "semver-old", "kind": "string", "key": "banner-text", "default": "x",
         "context": {"targetingKey": "u1", "appVersion": "1.9.9"}},
        {"name": "number", "kind": "number", "key": "upload-limit", "default": 0,
         "context": {"targetingKey": "u1", "plan": "pro"}},
        {"name": "object", "kind": "object", "key": "theme", "default": {},
         "context": {"targetingKey": "user-42"}},
        {"name": "missing", "kind": "boolean", "key": "no-such-flag", "default": True,
         "context": {"targetingKey": "u1"}},
        {"name": "wrong-type", "kind": "number", "key": "new-checkout", "default": 5,
         "context": {"targetingKey": "u1"}},
    ]
    env = dict(os.environ, FLAGS_URL=secrets["FLAGS_URL"], FLAGS_SDK_KEY=secrets["FLAGS_SDK_KEY"],
               CASES=json.dumps(cases))
    run = subprocess.run([shutil.which("node") or "node", "ofrep.mjs"], cwd=CLIENTS_DIR, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(run.stdout.strip().splitlines()[-1])["results"]
    assert results["match"] == {"value": True, "variant": "on", "reason": "TARGETING_MATCH",
                                "errorCode": None}, results
    assert results["no-match"]["value"] is False and results["no-match"]["reason"] == "DEFAULT"
    assert results["semver"]["value"] == "Welcome back" and results["semver-old"]["value"] == "Hello"
    assert results["number"]["value"] == 250
    raw = ofrep(secrets, "theme", {"targetingKey": "user-42"}).json()
    assert results["object"]["value"] == raw["value"] and results["object"]["reason"] == "SPLIT"
    # The SDK's own error handling: the code default and OpenFeature's error codes.
    assert results["missing"]["value"] is True and results["missing"]["errorCode"] == "FLAG_NOT_FOUND"
    assert results["wrong-type"]["value"] == 5 and results["wrong-type"]["errorCode"] == "TYPE_MISMATCH"


def test_flags_are_mirrored_as_experimentation_items(pair):
    sb, w = pair
    iid = install(sb)
    rid, secrets, _ = provision(sb, iid)
    admin = Admin(secrets)
    created = admin("POST", body=CHECKOUT).json()
    fid = created["id"]
    wait_until(lambda: fid in vercel_items(sb, iid, rid), timeout=30, what="item created")
    item = vercel_items(sb, iid, rid)[fid]
    assert item["slug"] == "new-checkout" and item["category"] == "flag"
    assert item["name"] == "New checkout" and item["description"] == "The redesigned checkout"
    assert item["origin"] == "sso:" + w.url(f"/dashboard/resources/{rid}/flags/new-checkout")
    assert item["isArchived"] is False and item["createdAt"] == created["createdAt"]

    admin("PATCH", "/new-checkout", {"name": "Checkout v2"})
    wait_until(lambda: vercel_items(sb, iid, rid)[fid]["name"] == "Checkout v2", timeout=30,
               what="item patched")
    admin("PATCH", "/new-checkout", {"archived": True})
    wait_until(lambda: vercel_items(sb, iid, rid)[fid]["isArchived"] is True, timeout=30,
               what="item archived")
    admin("DELETE", "/new-checkout")
    wait_until(lambda: fid not in vercel_items(sb, iid, rid), timeout=30, what="item deleted")

    # A bulk create goes out in Create calls of at most 50 items.
    before = mark(sb)
    many = [{"key": f"f{i:03}", "type": "boolean", "variants": {"on": True, "off": False},
             "defaultVariant": "off"} for i in range(49)]
    assert admin("POST", body={"flags": many}).status_code == 201
    wait_until(lambda: len(vercel_items(sb, iid, rid)) == 49, timeout=30, what="49 items")
    # flags-free allows 50: the 51st is refused with a user message.
    r = admin("POST", body={"flags": [dict(many[0], key="x1"), dict(many[0], key="x2")]})
    assert r.status_code == 409 and "50 flags" in r.json()["error"]["user"]["message"], r.text
    creates = calls(sb, before, "POST", "/experimentation/items")
    assert len(creates) == 1 and len(creates[0][1]["items"]) == 49, creates

    _, pro, _ = provision(sb, iid, plan="flags-pro")
    before = mark(sb)
    many = [dict(m, key=f"g{i:03}") for i, m in enumerate(many * 3)][:120]
    assert Admin(pro)("POST", body={"flags": many}).status_code == 201
    prid = pro["FLAGS_URL"].rsplit("/", 1)[1]
    wait_until(lambda: len(vercel_items(sb, iid, prid)) == 120, timeout=30, what="120 items")
    sizes = [len(body["items"]) for _, body, _ in calls(sb, before, "POST", "/experimentation/items")]
    assert sorted(sizes) == [20, 50, 50], sizes


def test_global_config_sync_converges_and_stops(pair):
    sb, w = pair
    iid = install(sb)
    rid, secrets, body = provision(
        sb, iid, protocolSettings={"experimentation": {"edgeConfigId": "ecfg_flags1"}})
    assert body["protocolSettings"]["experimentation"] == {"edgeConfigSyncingEnabled": True,
                                                           "edgeConfigId": "ecfg_flags1"}
    # Connected projects get the store's connection string from Vercel next to our secrets.
    env = requests.get(f"{sb.base}/_sandbox/env/{iid}/{rid}", timeout=30).json()
    assert env["production"]["EXPERIMENTATION_CONFIG"].startswith(
        "https://edge-config.vercel.com/ecfg_flags1?token=")
    assert env["production"]["FLAGS_SDK_KEY"] == secrets["FLAGS_SDK_KEY"]
    admin = Admin(secrets)
    made = admin("POST", body={"flags": [CHECKOUT, BANNER]}).json()["flags"]
    banner_id = made[1]["id"]

    def synced():
        gc = global_config(sb, iid, rid)
        return gc is not None and gc["items"] == definitions(admin)

    wait_until(synced, timeout=30, what="Global Config = the flag set")
    admin("PATCH", "/banner-text", {"defaultVariant": "b"})
    wait_until(synced, timeout=30, what="Global Config after a change")

    # Someone else writes the store: our next conditional write gets 412, re-reads and wins.
    token = sb.access_token(iid)
    path = f"/v1/installations/{iid}/resources/{rid}/experimentation/global-config"
    r = sb.vercel("PUT", path, token=token, json_body={"data": {"intruder": True}})
    assert r.status_code == 200, r.text
    before = mark(sb)
    admin("PATCH", "/new-checkout", {"enabled": False})
    wait_until(synced, timeout=30, what="Global Config after a concurrent write")
    statuses = [status for status, _, _ in calls(sb, before, "PUT", path)]
    assert statuses[:2] == [412, 200], statuses

    # Syncing turned off: changes are no longer written.
    sb.run("update-resource", installationId=iid, resourceId=rid,
           protocolSettings={"experimentation": {}})
    before = mark(sb)
    admin("PATCH", "/banner-text", {"name": "Banner"})
    wait_until(lambda: calls(sb, before, "PATCH", "/experimentation/items/" + banner_id),
               timeout=30, what="the item patched")
    time.sleep(1)
    assert not calls(sb, before, "PUT", "/global-config") + calls(sb, before, "GET", "/global-config")

    # On again with another store: a full write.
    sb.run("update-resource", installationId=iid, resourceId=rid,
           protocolSettings={"experimentation": {"edgeConfigId": "ecfg_flags2"}})
    wait_until(synced, timeout=30, what="Global Config after re-enabling")


def test_legacy_edge_config_path_and_409_stop(pair):
    sb, w = pair
    iid = install(sb)
    # A Vercel without the new path: global-config answers 404, edge-config works.
    add_faults(sb, {"status": 404, "pathContains": "/experimentation/global-config"})
    try:
        rid, secrets, _ = provision(
            sb, iid, protocolSettings={"experimentation": {"edgeConfigId": "ecfg_legacy"}})
        admin = Admin(secrets)
        fid = admin("POST", body=CHECKOUT).json()["id"]
        wait_until(lambda: (global_config(sb, iid, rid) or {}).get("items") == definitions(admin),
                   timeout=30, what="written through edge-config")
        assert calls(sb, 0, "PUT", f"/resources/{rid}/experimentation/edge-config")
    finally:
        clear_faults(sb)

    # 409 from Vercel: syncing stops with a notification, and no more writes are tried.
    add_faults(sb, {"status": 409, "method": "PUT", "pathContains": "/experimentation/"})
    try:
        admin("PATCH", "/new-checkout", {"name": "after 409"})

        def stopped():
            _, res = sb.flow("get-resource", installationId=iid, resourceId=rid)
            n = res["response"].get("notification") or {}
            return n.get("title") == "Flag sync stopped" and \
                res["response"]["protocolSettings"]["experimentation"]["edgeConfigSyncingEnabled"] is False

        wait_until(stopped, timeout=30, what="sync stopped with a notification")
        before = mark(sb)
        admin("PATCH", "/new-checkout", {"name": "still stopped"})
        wait_until(lambda: calls(sb, before, "PATCH", "/experimentation/items/" + fid),
                   timeout=30, what="the item patched")
        time.sleep(1)
        assert not calls(sb, before, "PUT", "-config"), "no Global Config write once stopped"
    finally:
        clear_faults(sb)


def test_evaluations_are_metered(pair):
    sb, w = pair
    iid = install(sb)
    rid, secrets, _ = provision(sb, iid, plan="flags-pro")
    Admin(secrets)("POST", body={"flags": [CHECKOUT, BANNER, LIMIT]})
    for _ in range(7):
        assert ofrep(secrets, "new-checkout", {"targetingKey": "u"}).status_code == 200
    for _ in range(3):
        assert ofrep(secrets, context={"targetingKey": "u", "n": _}).status_code == 200  # 3 flags
    assert ofrep(secrets, "missing", {}).status_code == 404  # not an evaluation

    def counted():
        r = wharf_cli(w, "billing", "statement", "--installation", iid)
        assert r.returncode == 0, r.stderr
        return '"evaluations"' in r.stdout and "16" in r.stdout

    wait_until(counted, timeout=30, what="16 evaluations in the ledger")


def test_sso_deep_link_lands_on_the_flag(pair):
    sb, w = pair
    iid = install(sb)
    rid, secrets, _ = provision(sb, iid)
    fid = Admin(secrets)("POST", body=CHECKOUT).json()["id"]
    out = sb.run("sso", installationId=iid, resourceId=rid, experimentationItemId=fid)
    r = requests.get(out["redirectUrl"], allow_redirects=False, timeout=30)
    assert r.status_code == 303, r.text
    session = r.headers["Set-Cookie"].partition("=")[2].split(";")[0]
    assert r.headers["Location"] == f"/dashboard/experimentation?item={fid}"
    r = requests.get(w.url(r.headers["Location"]), cookies={"wharf_session": session},
                     allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == f"/dashboard/resources/{rid}/flags/new-checkout"
    page = requests.get(w.url(r.headers["Location"]), cookies={"wharf_session": session}, timeout=30)
    assert page.status_code == 200 and "New checkout" in page.text and 'id="flag-toggle"' in page.text
    # Another installation's item is not found.
    other = install(sb)
    out = sb.run("sso", installationId=other, experimentationItemId=fid)
    r = requests.get(out["redirectUrl"], allow_redirects=False, timeout=30)
    session = r.headers["Set-Cookie"].partition("=")[2].split(";")[0]
    r = requests.get(w.url(f"/dashboard/experimentation?item={fid}"),
                     cookies={"wharf_session": session}, allow_redirects=False, timeout=30)
    assert r.status_code == 404


def test_deleting_the_resource_drops_its_flags(pair):
    sb, w = pair
    iid = install(sb)
    rid, secrets, _ = provision(sb, iid)
    Admin(secrets)("POST", body=CHECKOUT)
    status, res = sb.flow("delete-resource", installationId=iid, resourceId=rid)
    assert res["ok"], res
    assert ofrep(secrets, "new-checkout").status_code == 401
    for table in ("flags", "flag_sets"):
        rows = w.state_rows(f"select count(*) from {table} where resource_id = ?", (rid,))
        assert rows == [(0,)], table


def test_rotation_replaces_both_keys_after_the_delay(pair):
    sb, _ = pair
    iid = install(sb)
    rid, old, _ = provision(sb, iid)
    Admin(old)("POST", body=CHECKOUT)
    rot = sb.run("rotate-secrets", installationId=iid, resourceId=rid,
                 delayOldSecretsExpirationHours=0.0008)  # 2.88 s
    assert rot["ok"] and rot["status"] == 200 and rot["findings"] == [], rot
    new = {x["name"]: x["value"] for x in rot["response"]["secrets"]}
    assert new["FLAGS_URL"] == old["FLAGS_URL"]
    assert new["FLAGS_SDK_KEY"] != old["FLAGS_SDK_KEY"] and new["FLAGS_ADMIN_KEY"] != old["FLAGS_ADMIN_KEY"]
    assert new["FLAGS_SDK_KEY"].startswith("wflro_") and new["FLAGS_ADMIN_KEY"].startswith("wfl_")
    assert ofrep(old, "new-checkout").status_code == 200  # inside the delay
    assert Admin(new)("GET").status_code == 200
    time.sleep(3.5)
    assert ofrep(old, "new-checkout").status_code == 401
    assert Admin(old)("GET").status_code == 401
    assert ofrep(new, "new-checkout").json()["value"] is False


def test_a_transferred_flag_set_is_mirrored_under_its_new_installation(pair):
    sb, _ = pair
    a, b = install(sb), install(sb)
    rid, secrets, _ = provision(sb, a)
    fid = Admin(secrets)("POST", body=CHECKOUT).json()["id"]
    wait_until(lambda: fid in vercel_items(sb, a, rid), timeout=30, what="item under A")
    claim = sb.run("transfer-create", installationId=a, resourceIds=[rid])["response"]["providerClaimId"]
    sb.run("transfer-verify", installationId=b, claimId=claim)
    assert sb.run("transfer-accept", installationId=b, claimId=claim)["ok"]
    wait_until(lambda: fid in vercel_items(sb, b, rid), timeout=30, what="item under B")
    assert vercel_items(sb, b, rid)[fid]["slug"] == "new-checkout"
    # The flags keep evaluating with the same keys.
    assert ofrep(secrets, "new-checkout", {"targetingKey": "u", "country": "NL"}).json()["value"] is True
