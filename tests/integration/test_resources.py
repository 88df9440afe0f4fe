"""The resource half of the Partner API on the real SQLite product, driven through the real
wharf-sandbox: provision → env vars → data plane → REPL → rotation → suspend/resume →
delete, and the negative cases (other installations, bad input, SQL that tries to escape)."""
import glob
import os
import shutil
import subprocess
import time

import pytest
import requests

from lib import api
from lib.sandbox import start_pair


@pytest.fixture
def inst(pair):
    sb, _ = pair
    iid = api.new_installation_id()
    assert sb.run("install", installationId=iid)["ok"]
    return iid


def provision(sb, iid, name="db", plan="sqlite-free", **extra):
    res = sb.run("provision", installationId=iid, productId="sqlite-db", name=name,
                 metadata={"durability": "full"}, billingPlanId=plan, **extra)
    assert res["ok"], res
    assert res["findings"] == [], res["findings"]
    return res["response"]


def secrets_of(resource):
    return {s["name"]: s["value"] for s in resource["secrets"]}


def q(secrets, body, token_name="DATABASE_TOKEN", token=None):
    return requests.post(secrets["DATABASE_URL"] + "/query", json=body, timeout=30,
                         headers={"Authorization": f"Bearer {token or secrets[token_name]}"})


def db_files(w, rid):
    return glob.glob(os.path.join(w.data_dir, "databases", rid + "*"))


def test_provision_env_vars_data_plane_and_repl(pair, inst):
    sb, w = pair
    res = provision(sb, inst)
    rid = res["id"]
    assert res["status"] == "ready" and res["billingPlan"]["id"] == "sqlite-free"
    s = secrets_of(res)
    assert set(s) == {"DATABASE_URL", "DATABASE_TOKEN", "DATABASE_READONLY_TOKEN"}
    assert s["DATABASE_URL"] == w.url(f"/v1/databases/{rid}")
    assert db_files(w, rid)

    # The env vars a Vercel project connected to the resource would get.
    env = requests.get(f"{sb.base}/_sandbox/env/{inst}/{rid}", timeout=10).json()
    assert env["production"]["DATABASE_TOKEN"] == s["DATABASE_TOKEN"]

    r = q(s, {"statements": [{"sql": "create table notes(id integer primary key, body text)"},
                             {"sql": "insert into notes(body) values (?), (?)", "params": ["a", "b"]}]})
    assert r.status_code == 200, r.text
    assert r.json()["results"][1]["rowsAffected"] == 2
    r = q(s, {"sql": "select id, body from notes where body = :b", "params": {":b": "b"}})
    first = r.json()["results"][0]
    assert first["columns"] == ["id", "body"] and first["rows"] == [[2, "b"]], r.text

    ro = q(s, {"sql": "insert into notes(body) values ('x')"}, "DATABASE_READONLY_TOKEN")
    assert ro.status_code == 403 and ro.json()["error"]["code"] == "read_only", ro.text
    assert q(s, {"sql": "select count(*) from notes"}, "DATABASE_READONLY_TOKEN").status_code == 200

    repl = sb.run("repl", installationId=inst, resourceId=rid, input="select body from notes order by id")
    assert repl["ok"] and repl["findings"] == [], repl
    table = repl["response"][0]
    assert table["type"] == "table"
    assert [row[0]["text"] for row in table["rows"]] == ["a", "b"]
    tables = sb.run("repl", installationId=inst, resourceId=rid, input=".tables")
    assert "notes" in str(tables["response"])
    viewer = sb.run("repl", installationId=inst, resourceId=rid, input="delete from notes", role="USER")
    assert viewer["ok"] and "read-only" in str(viewer["response"]).lower(), viewer
    assert q(s, {"sql": "select count(*) from notes"}).json()["results"][0]["rows"] == [[2]]


def test_rotation_keeps_old_token_for_the_delay(pair, inst):
    sb, w = pair
    res = provision(sb, inst)
    rid, old = res["id"], secrets_of(res)
    assert q(old, {"sql": "create table t(x)"}).status_code == 200
    rot = sb.run("rotate-secrets", installationId=inst, resourceId=rid,
                 delayOldSecretsExpirationHours=0.0008)  # 2.88 s
    assert rot["ok"] and rot["status"] == 200 and rot["findings"] == [], rot
    new = {x["name"]: x["value"] for x in rot["response"]["secrets"]}
    assert new["DATABASE_TOKEN"] != old["DATABASE_TOKEN"]
    assert q(old, {"sql": "select 1"}).status_code == 200   # still inside the delay
    assert q(new, {"sql": "select count(*) from t"}).status_code == 200
    time.sleep(3.5)
    r = q(old, {"sql": "select 1"})
    assert r.status_code == 401, r.text
    assert q(new, {"sql": "select 1"}).status_code == 200
    viewer = sb.run("rotate-secrets", installationId=inst, resourceId=rid, role="USER")
    assert viewer["status"] == 403


def test_suspend_resume_delete(pair, inst):
    sb, w = pair
    res = provision(sb, inst)
    rid, s = res["id"], secrets_of(res)
    sus = sb.run("update-resource", installationId=inst, resourceId=rid, status="suspended")
    assert sus["ok"] and sus["response"]["status"] == "suspended", sus
    r = q(s, {"sql": "select 1"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "resource_suspended"
    back = sb.run("update-resource", installationId=inst, resourceId=rid, status="resumed")
    assert back["ok"] and q(s, {"sql": "select 1"}).status_code == 200
    renamed = sb.run("update-resource", installationId=inst, resourceId=rid, name="renamed",
                     billingPlanId="sqlite-pro")
    assert renamed["response"]["name"] == "renamed"
    assert renamed["response"]["billingPlan"]["id"] == "sqlite-pro"

    gone = sb.run("delete-resource", installationId=inst, resourceId=rid)
    assert gone["ok"] and gone["status"] == 204, gone
    assert q(s, {"sql": "select 1"}).status_code in (401, 404)
    assert db_files(w, rid) == []
    again = sb.flow("delete-resource", installationId=inst, resourceId=rid)
    assert again[0] in (200, 404, 409)  # the sandbox may refuse; wharf answers 204 below
    token = requests.post(sb.base + "/_sandbox/tokens", timeout=10,
                          json={"kind": "system", "installationId": inst}).json()["token"]
    assert w.request("DELETE", f"/v1/installations/{inst}/resources/{rid}", token).status_code == 204
    assert w.get(f"/v1/installations/{inst}/resources/{rid}", token).status_code == 404


def test_idempotent_provision_creates_one_database(pair, inst):
    sb, w = pair
    first = provision(sb, inst, idempotencyKey="prov-key-1")
    second = provision(sb, inst, idempotencyKey="prov-key-1")
    assert first["id"] == second["id"]
    assert secrets_of(first) == secrets_of(second)
    listed = sb.run("list-resources", installationId=inst)["response"]["resources"]
    assert [r["id"] for r in listed].count(first["id"]) == 1
    assert len(glob.glob(os.path.join(w.data_dir, "databases", "*.db"))) >= 1


def test_other_installations_see_nothing(pair, inst):
    sb, w = pair
    res = provision(sb, inst)
    rid, s = res["id"], secrets_of(res)
    other = api.new_installation_id()
    sb.run("install", installationId=other)
    mine = provision(sb, other)
    token = requests.post(sb.base + "/_sandbox/tokens", timeout=10,
                          json={"kind": "system", "installationId": other}).json()["token"]
    assert w.get(f"/v1/installations/{other}/resources/{rid}", token).status_code == 404
    # A's token on B's database URL.
    r = requests.post(secrets_of(mine)["DATABASE_URL"] + "/query", json={"sql": "select 1"},
                      headers={"Authorization": f"Bearer {s['DATABASE_TOKEN']}"}, timeout=10)
    assert r.status_code == 401
    assert q(s, {"sql": "select 1"}, token="wdb_forged").status_code == 401
    assert requests.post(s["DATABASE_URL"] + "/query", json={"sql": "select 1"}, timeout=10).status_code == 401


def test_bad_provision_input(pair, inst):
    sb, w = pair
    for params, field in [
        (dict(metadata={"durability": "fast"}, billingPlanId="sqlite-free", productId="sqlite-db"), "durability"),
        (dict(metadata={}, billingPlanId="nope", productId="sqlite-db"), "billingPlanId"),
        (dict(metadata={}, billingPlanId="sqlite-free", productId="redis"), "productId"),
    ]:
        res = sb.run("provision", installationId=inst, name="x", **params)
        assert res["status"] == 400, res
        assert res["response"]["error"]["fields"][0]["key"] == field, res


@pytest.mark.parametrize("sql,code", [
    ("attach database '/tmp/x.db' as x", "forbidden_sql"),
    ("select load_extension('/tmp/evil')", "forbidden_sql"),
    ("pragma writable_schema=1", "forbidden_sql"),
    ("pragma journal_mode=delete", "forbidden_sql"),
    ("vacuum into '/tmp/copy.db'", "forbidden_sql"),
])
def test_sql_cannot_escape_the_database(pair, inst, sql, code):
    sb, w = pair
    s = secrets_of(provision(sb, inst))
    r = q(s, {"sql": sql})
    assert r.status_code in (400, 403) and r.json()["error"]["code"] == code, r.text
    assert not os.path.exists("/tmp/copy.db")


def test_slow_and_oversized_queries_are_bounded(pair, inst):
    sb, w = pair
    s = secrets_of(provision(sb, inst))
    slow = q(s, {"sql": "with recursive c(x) as (select 1 union all select x+1 from c) "
                        "select count(*) from c"})
    assert slow.status_code == 400 and slow.json()["error"]["code"] == "timeout", slow.text
    big = q(s, {"sql": "with recursive c(x) as (select 1 union all select x+1 from c limit 200000) "
                       "select x, printf('%.100c', 'x') from c"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "result_too_large", big.text


ASYNC_CATALOG = {
    "products": [{
        "id": "sqlite-db", "kind": "sqlite", "name": "SQLite", "plans": ["free"],
        "rotation": "async",
        "environmentOverrides": {"DATABASE_TOKEN": {"preview": "DATABASE_READONLY_TOKEN",
                                                    "development": "DATABASE_READONLY_TOKEN"}},
    }],
    "plans": [{"id": "free", "type": "subscription", "name": "Free", "description": "d",
               "paymentMethodRequired": False, "limits": {"storageBytes": 1048576}}],
}


def test_async_rotation_pushes_secrets_and_per_environment_values(wharf_bin, tmp_path):
    sb, w = start_pair(tmp_path, wharf_bin, ASYNC_CATALOG)
    try:
        iid = api.new_installation_id()
        sb.run("install", installationId=iid)
        res = sb.run("provision", installationId=iid, productId="sqlite-db", name="db",
                     metadata={}, billingPlanId="free")["response"]
        rid, s = res["id"], secrets_of(res)
        token_secret = next(x for x in res["secrets"] if x["name"] == "DATABASE_TOKEN")
        assert token_secret["environmentOverrides"] == {
            "preview": s["DATABASE_READONLY_TOKEN"], "development": s["DATABASE_READONLY_TOKEN"]}
        env = requests.get(f"{sb.base}/_sandbox/env/{iid}/{rid}", timeout=10).json()
        assert env["production"]["DATABASE_TOKEN"] == s["DATABASE_TOKEN"]
        assert env["preview"]["DATABASE_TOKEN"] == s["DATABASE_READONLY_TOKEN"]

        rot = sb.run("rotate-secrets", installationId=iid, resourceId=rid, idempotencyKey="rot-1")
        assert rot["status"] == 202 and rot["response"] == {"sync": False}, rot
        # Wharf pushes the new secrets to the sandbox's Update Resource Secrets.
        deadline = time.time() + 20
        pushed = None
        while time.time() < deadline:
            stored = sb.state()["resources"][iid][rid]["secrets"]
            value = next(x["value"] for x in stored if x["name"] == "DATABASE_TOKEN")
            if value != s["DATABASE_TOKEN"]:
                pushed = value
                break
            time.sleep(0.1)
        assert pushed, "rotated secrets never reached the sandbox"
        # Vercel's record of the rotation is complete once they arrive.
        record = sb.state()["resources"][iid][rid]
        assert record["rotationPending"] is False and record["secretsRotatedAt"], record
        assert q(s, {"sql": "select 1"}, token=pushed).status_code == 200
        # A repeated rotation request (same Idempotency-Key) is not a second rotation.
        again = sb.run("rotate-secrets", installationId=iid, resourceId=rid, idempotencyKey="rot-1")
        assert again["status"] == 202
        time.sleep(1)
        stored = sb.state()["resources"][iid][rid]["secrets"]
        assert next(x["value"] for x in stored if x["name"] == "DATABASE_TOKEN") == pushed

        # Storage limit: the database cannot grow past 1 MiB and warns near it.
        assert q(s, {"sql": "create table blob(b)"}, token=pushed).status_code == 200
        full = None
        for _ in range(40):
            full = q(s, {"sql": "insert into blob values (zeroblob(65536))"}, token=pushed)
            if full.status_code != 200:
                break
        assert full.status_code == 507 and full.json()["error"]["code"] == "storage_limit", full.text
        token = requests.post(sb.base + "/_sandbox/tokens", timeout=10,
                              json={"kind": "system", "installationId": iid}).json()["token"]
        # Usage (and with it the storage notification) is flushed to the ledger every second.
        deadline = time.time() + 15
        got = {}
        while time.time() < deadline and "notification" not in got:
            got = w.get(f"/v1/installations/{iid}/resources/{rid}", token).json()
            time.sleep(0.2)
        assert got["notification"]["level"] == "warn", got
        # The notification opens the resource's dashboard page through SSO (flows.md §2.3).
        assert got["notification"]["href"] == f"sso:{w.url('')}/dashboard/resources/{rid}"
        # Wharf reported the change (resource.updated through its outbox); the sandbox, like
        # Vercel, re-read the resource and now shows the notification too.
        deadline = time.time() + 15
        seen = None
        while time.time() < deadline and not seen:
            st = sb.state()
            events = [e for e in st.get("events", []) if e.get("event", {}).get("resourceId") == rid]
            note = st["resources"][iid][rid].get("notification")
            if events and note:
                seen = (events, note)
            time.sleep(0.2)
        assert seen, sb.state().get("events")
        assert seen[0][0]["event"]["type"] == "resource.updated"
        assert seen[1]["level"] == "warn"
    finally:
        w.stop()
        sb.stop()


def test_repl_streams_jsonl_and_replays_with_the_same_key(pair, inst):
    sb, w = pair
    res = provision(sb, inst)
    rid, s = res["id"], secrets_of(res)
    q(s, {"statements": [{"sql": "create table n(x)"},
                         {"sql": "with recursive c(x) as (select 1 union all select x+1 from c "
                                 "limit 50) insert into n select x from c"}]})
    streamed = sb.run("repl", installationId=inst, resourceId=rid, stream=True,
                      input="select count(*) from n; .tables", idempotencyKey="repl-1")
    assert streamed["ok"] and streamed["findings"] == [], streamed
    ex = sb.exchange(streamed["exchanges"][0])
    lines = [l for l in ex["responseBody"].split("\n") if l]
    assert len(lines) == 2 and '"50"' in lines[0] and "n" in lines[1], ex["responseBody"]

    # Directly: chunked transfer, one block per line; a retry with the same key replays.
    token = requests.post(sb.base + "/_sandbox/tokens", timeout=10,
                          json={"kind": "user", "installationId": inst}).json()["token"]
    for attempt in range(2):
        r = w.request("POST", f"/v1/installations/{inst}/resources/{rid}/repl", token,
                      json_body={"input": "insert into n values (1000); select count(*) from n"},
                      headers={"Accept": "application/jsonl"}, idem="repl-direct")
        assert r.status_code == 200 and r.headers["content-type"] == "application/jsonl", r.text
        if attempt == 0:
            assert r.headers.get("transfer-encoding") == "chunked"
            first = r.text
        else:
            assert r.headers.get("idempotency-replayed") == "true"
            assert r.text == first
    assert q(s, {"sql": "select count(*) from n"}).json()["results"][0]["rows"] == [[51]]


def test_secrets_are_encrypted_at_rest(pair, inst):
    sb, w = pair
    s = secrets_of(provision(sb, inst))
    q(s, {"sql": "select 1"})
    blob = b""
    for name in ("state.db", "state.db-wal"):
        path = os.path.join(w.data_dir, name)
        if os.path.exists(path):
            blob += open(path, "rb").read()
    if w.state_url:  # WHARF_TEST_STATE=postgres: the whole state database
        pg_dump = shutil.which("pg_dump") or "/usr/bin/pg_dump"
        blob += subprocess.run([pg_dump, w.state_url], capture_output=True, check=True,
                               timeout=60).stdout
    assert blob  # the state was read: the test cannot pass for want of it
    for name in ("DATABASE_TOKEN", "DATABASE_READONLY_TOKEN"):
        assert s[name].encode() not in blob, name
        assert s[name].encode().hex().encode() not in blob, name  # pg_dump's BYTEA is hex


INSTALLATION_PLAN_CATALOG = {
    "products": [{"id": "sqlite-db", "kind": "sqlite", "name": "SQLite",
                  "plans": ["team-free", "team-pro", "db-free"]}],
    "plans": [
        {"id": "team-free", "type": "subscription", "name": "Team free", "description": "d",
         "scope": "installation", "paymentMethodRequired": False},
        {"id": "team-pro", "type": "subscription", "name": "Team pro", "description": "d",
         "scope": "installation"},
        {"id": "db-free", "type": "subscription", "name": "DB free", "description": "d",
         "paymentMethodRequired": False},
    ],
}


def test_installation_scope_plan_chosen_at_provision_applies_to_installation(wharf_bin, tmp_path):
    sb, w = start_pair(tmp_path, wharf_bin, INSTALLATION_PLAN_CATALOG)
    try:
        iid = api.new_installation_id()
        assert sb.run("install", installationId=iid)["response"]["billingPlan"]["id"] == "team-free"
        res = sb.run("provision", installationId=iid, productId="sqlite-db", name="db",
                     metadata={}, billingPlanId="team-pro")
        assert res["ok"], res
        got = sb.run("get-installation", installationId=iid)
        assert got["response"]["billingPlan"]["id"] == "team-pro", got
    finally:
        w.stop()
        sb.stop()


def test_protocol_settings_echoed_and_list_filters_by_ids(pair, inst):
    sb, w = pair
    a = provision(sb, inst, protocolSettings={"experimentation": {"edgeConfigId": "ecfg_123"}})
    # Echoed, but a database product writes no Global Config: syncing is not claimed (the
    # flags product's resources report it enabled, tests/integration/test_flags.py).
    assert a["protocolSettings"] == {"experimentation": {"edgeConfigSyncingEnabled": False,
                                                         "edgeConfigId": "ecfg_123"}}
    b = provision(sb, inst, name="other")
    token = requests.post(sb.base + "/_sandbox/tokens", timeout=10,
                          json={"kind": "system", "installationId": inst}).json()["token"]
    listed = w.get(f"/v1/installations/{inst}/resources?ids={a['id']}", token).json()["resources"]
    assert [r["id"] for r in listed] == [a["id"]]
    both = w.get(f"/v1/installations/{inst}/resources?ids={a['id']}&ids={b['id']}", token).json()
    assert {r["id"] for r in both["resources"]} == {a["id"], b["id"]}
    off = sb.run("update-resource", installationId=inst, resourceId=a["id"],
                 protocolSettings={"experimentation": {}})
    assert off["response"]["protocolSettings"] == {"experimentation": {"edgeConfigSyncingEnabled": False}}
