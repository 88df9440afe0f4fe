"""The sqlite-db product from the clients users already have: a resource provisioned through
the real wharf-sandbox, then used with its env vars by @libsql/client and Drizzle ORM (real
npm packages, pinned in tests/clients/package-lock.json) and by raw Hrana pipelines for what
the clients do not show (batons, expiry, limits, usage)."""
import json
import os
import shutil
import subprocess
import time

import pytest
import requests

from lib import api
from lib.sandbox import start_pair

CLIENTS_DIR = os.path.join(os.path.dirname(__file__), "..", "clients")


@pytest.fixture(scope="module")
def pair(wharf_bin, tmp_path_factory):
    # Short stream expiry so the abandoned-transaction test does not wait long.
    sb, w = start_pair(tmp_path_factory.mktemp("pair"), wharf_bin,
                       wharf_env={"WHARF_SQL_STREAM_IDLE_S": "2"})
    yield sb, w
    w.stop()
    sb.stop()


def provision(sb, name="db", plan="sqlite-free"):
    iid = api.new_installation_id()
    assert sb.run("install", installationId=iid)["ok"]
    res = sb.run("provision", installationId=iid, productId="sqlite-db", name=name,
                 metadata={"durability": "full"}, billingPlanId=plan)
    assert res["ok"] and res["findings"] == [], res
    return iid, res["response"]["id"], {s["name"]: s["value"] for s in res["response"]["secrets"]}


def pipeline(secrets, body, token=None, path="/v2/pipeline"):
    base = secrets["DATABASE_URL"].rsplit("/", 1)[0]  # resolved as clients do
    return requests.post(base + path, json=body, timeout=30,
                         headers={"Authorization": f"Bearer {token or secrets['DATABASE_TOKEN']}"})


def execute(sql, args=None):
    return {"type": "execute", "stmt": {"sql": sql, "args": args or []}}


def test_libsql_client_and_drizzle_work_with_the_env_vars(pair):
    sb, w = pair
    assert os.path.isdir(os.path.join(CLIENTS_DIR, "node_modules", "@libsql", "client")), \
        "run scripts/install-deps.sh (npm ci in tests/clients)"
    _, rid, secrets = provision(sb)
    env = dict(os.environ, **secrets)
    run = subprocess.run([shutil.which("node") or "node", "libsql.mjs"], cwd=CLIENTS_DIR, env=env,
                         capture_output=True, text=True, timeout=180)
    print(run.stdout, run.stderr)
    assert run.returncode == 0, run.stdout + run.stderr
    for name in ("insert with positional args", "insert with named args", "typed select",
                 "transactional batch rolls back on error", "interactive transaction with rollback",
                 "read-only token reads and cannot write", "wrong token is refused",
                 "drizzle: schema, insert, select"):
        assert f"PASS {name}" in run.stdout
    # The same database through Wharf's own query API.
    r = requests.post(secrets["DATABASE_URL"] + "/query", timeout=10,
                      json={"sql": "select name from users order by id"},
                      headers={"Authorization": f"Bearer {secrets['DATABASE_TOKEN']}"})
    assert r.status_code == 200 and r.json()["results"][0]["rows"] == [["Ada"], ["Linus"]]


def test_batons_bind_streams_and_a_url_with_a_trailing_slash_works(pair):
    sb, w = pair
    _, rid, s = provision(sb)
    # Version checks: v2 and v3 JSON are spoken, protobuf is not (clients fall back to JSON).
    base = s["DATABASE_URL"].rsplit("/", 1)[0]
    assert requests.get(base + "/v2", timeout=10).status_code == 200
    assert requests.get(base + "/v3", timeout=10).status_code == 200
    assert requests.get(base + "/v3-protobuf", timeout=10).status_code == 404

    r = pipeline(s, {"baton": None, "requests": [execute("create table t(v)"),
                                                  execute("begin immediate"),
                                                  execute("insert into t values (1)")]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["type"] for x in body["results"]] == ["ok", "ok", "ok"], body
    baton = body["baton"]
    assert baton and body["base_url"] is None
    # The read-only token cannot continue the writer's stream.
    other = pipeline(s, {"baton": baton, "requests": [execute("commit")]},
                     token=s["DATABASE_READONLY_TOKEN"])
    assert other.status_code == 400 and other.json()["code"] == "STREAM_EXPIRED"
    # Another database's token is refused outright, at this path and the database's own.
    _, _, s2 = provision(sb, name="other")
    assert pipeline(s, {"baton": None, "requests": []}, token=s2["DATABASE_TOKEN"],
                    path=f"/{rid}/v2/pipeline").status_code == 401
    # With a trailing slash clients resolve under the database's own URL (v3 here).
    r = requests.post(s["DATABASE_URL"] + "/v3/pipeline", timeout=10,
                      json={"baton": baton, "requests": [execute("commit"),
                                                         {"type": "get_autocommit"},
                                                         {"type": "close"}]},
                      headers={"Authorization": f"Bearer {s['DATABASE_TOKEN']}"})
    assert r.status_code == 200, r.text
    assert r.json()["results"][1]["response"]["is_autocommit"] is True
    assert r.json()["baton"] is None
    # A baton serves one request: replaying it fails.
    again = pipeline(s, {"baton": baton, "requests": [execute("select 1")]})
    assert again.status_code == 400 and again.json()["code"] == "STREAM_EXPIRED"
    assert again.json()["error"]["code"] == "stream_expired"  # the spec's envelope rides along
    count = pipeline(s, {"baton": None, "requests": [execute("select count(*) from t")]}).json()
    assert count["results"][0]["response"]["result"]["rows"] == [[{"type": "integer", "value": "1"}]]


def test_abandoned_transaction_rolls_back_and_frees_the_write_lock(pair):
    sb, w = pair
    _, rid, s = provision(sb)
    pipeline(s, {"baton": None, "requests": [execute("create table t(v)")]})
    r = pipeline(s, {"baton": None, "requests": [execute("begin immediate"),
                                                  execute("insert into t values (1)")]})
    baton = r.json()["baton"]
    assert baton
    time.sleep(3.5)  # WHARF_SQL_STREAM_IDLE_S=2, swept every second
    gone = pipeline(s, {"baton": baton, "requests": [execute("commit")]})
    assert gone.status_code == 400 and gone.json()["code"] == "STREAM_EXPIRED"
    # Rolled back, and another writer gets the lock at once.
    started = time.monotonic()
    w2 = pipeline(s, {"baton": None, "requests": [execute("insert into t values (2)"),
                                                   execute("select v from t")]}).json()
    assert time.monotonic() - started < 2
    assert w2["results"][1]["response"]["result"]["rows"] == [[{"type": "integer", "value": "2"}]]


def test_suspended_and_deleted_databases_are_refused(pair):
    sb, w = pair
    iid, rid, s = provision(sb)
    r = pipeline(s, {"baton": None, "requests": [execute("create table t(v)"),
                                                  execute("insert into t values (?)", [{"type": "integer", "value": "5"}]),
                                                  execute("insert into t values (6)")]})
    assert r.status_code == 200
    sus = sb.run("update-resource", installationId=iid, resourceId=rid, status="suspended")
    assert sus["ok"], sus
    r = pipeline(s, {"baton": None, "requests": [execute("select 1")]})
    assert r.status_code == 403 and r.json()["code"] == "RESOURCE_SUSPENDED"
    assert "suspended" in r.json()["message"]
    sb.run("update-resource", installationId=iid, resourceId=rid, status="resumed")
    gone = sb.run("delete-resource", installationId=iid, resourceId=rid)
    assert gone["ok"], gone
    r = pipeline(s, {"baton": None, "requests": [execute("select 1")]})
    assert r.status_code in (401, 404)


def test_malformed_pipelines_get_clear_errors(pair):
    sb, w = pair
    _, rid, s = provision(sb)
    r = pipeline(s, {"requests": "nope"})
    assert r.status_code == 400 and "requests" in r.json()["message"]
    r = pipeline(s, {"baton": None, "requests": [{"type": "warp"}, {"type": "execute"},
                                                  execute("select ?", [{"type": "integer", "value": "x"}]),
                                                  execute("select 1")]})
    assert r.status_code == 200
    res = r.json()["results"]
    assert [x["type"] for x in res] == ["error", "error", "error", "ok"]
    assert res[0]["error"]["code"] == "PROTO_ERROR"
    assert res[2]["error"]["code"] == "ARGS_INVALID"
    r = requests.post(s["DATABASE_URL"].rsplit("/", 1)[0] + "/v2/pipeline", data="{", timeout=10,
                      headers={"Authorization": f"Bearer {s['DATABASE_TOKEN']}",
                               "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["message"]


def ledger(w, rid):
    """The usage ledger's totals for a resource, read from the state store's own file."""
    return dict(w.state_rows("select metric, sum(value) from usage_ledger where resource_id = ? "
                             "group by metric", (rid,)))


def test_ledger_counts_hrana_usage_once_committed(pair):
    sb, w = pair
    iid, rid, s = provision(sb)
    r = pipeline(s, {"baton": None, "requests": [
        execute("create table t(v)"),
        {"type": "batch", "batch": {"steps": [
            {"stmt": {"sql": "begin"}},
            {"condition": {"type": "ok", "step": 0}, "stmt": {"sql": "insert into t values (1)"}},
            {"condition": {"type": "ok", "step": 1}, "stmt": {"sql": "insert into t values (2)"}},
            {"condition": {"type": "ok", "step": 2}, "stmt": {"sql": "commit"}}]}},
        # A transaction rolled back writes nothing billable.
        execute("begin"), execute("insert into t values (3)"), execute("rollback"),
        execute("select * from t")]})
    assert r.status_code == 200 and all(x["type"] == "ok" for x in r.json()["results"]), r.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and ledger(w, rid).get("queries", 0) < 9:
        time.sleep(0.2)
    totals = ledger(w, rid)
    assert totals.get("rowsWritten") == 2, totals
    assert totals.get("rowsRead") == 2, totals
    assert totals.get("queries") == 9, totals


def test_rotated_tokens_expire_after_the_delay(pair):
    sb, w = pair
    iid, rid, old = provision(sb)
    assert pipeline(old, {"baton": None, "requests": [execute("create table t(v)")]}).status_code == 200
    rot = sb.run("rotate-secrets", installationId=iid, resourceId=rid,
                 delayOldSecretsExpirationHours=0.0008)  # 2.88 s
    assert rot["ok"] and rot["status"] == 200, rot
    new = {x["name"]: x["value"] for x in rot["response"]["secrets"]}
    # Inside the delay both work, and a stream opened with the old token goes on.
    r = pipeline(old, {"baton": None, "requests": [execute("begin"), execute("insert into t values (1)")]})
    assert r.status_code == 200 and r.json()["baton"]
    assert pipeline(new, {"baton": None, "requests": [execute("select 1")]}).status_code == 200
    time.sleep(3.5)
    late = pipeline(old, {"baton": r.json()["baton"], "requests": [execute("commit")]})
    assert late.status_code == 401 and late.json()["code"] == "UNAUTHORIZED", late.text
    ok = pipeline(new, {"baton": None, "requests": [execute("select count(*) from t")]})
    assert ok.json()["results"][0]["response"]["result"]["rows"] == [[{"type": "integer", "value": "0"}]]


def test_v3_cursor_streams_a_batch_as_entries(pair):
    sb, w = pair
    _, rid, s = provision(sb)
    r = pipeline(s, {"baton": None, "batch": {"steps": [
        {"stmt": {"sql": "create table t(v text)"}},
        {"condition": {"type": "ok", "step": 0}, "stmt": {"sql": "insert into t values ('a'), ('b')"}},
        {"stmt": {"sql": "select v from t order by v"}},
        {"stmt": {"sql": "select * from nope"}}]}}, path="/v3/cursor")
    assert r.status_code == 200, r.text
    lines = [json.loads(x) for x in r.text.strip().split("\n")]
    assert lines[0]["baton"] and lines[0]["base_url"] is None
    kinds = [(e["type"], e.get("step")) for e in lines[1:]]
    assert kinds == [("step_begin", 0), ("step_end", None), ("step_begin", 1), ("step_end", None),
                     ("step_begin", 2), ("row", None), ("row", None), ("step_end", None),
                     ("step_error", 3)], kinds
    assert lines[2]["affected_row_count"] == 0 and lines[4]["affected_row_count"] == 2
    assert lines[6]["row"] == [{"type": "text", "value": "a"}]
    assert lines[9]["error"]["code"] == "SQLITE_ERROR"
