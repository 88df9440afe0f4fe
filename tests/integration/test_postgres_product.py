"""The `postgres` product kind on a real PostgreSQL server (Debian's postgresql package, a
throwaway cluster from scripts/pg-temp.sh), driven through the real wharf-sandbox: the
built-in catalog sells `postgres-db` once WHARF_POSTGRES_URL is set; a user connects with
psql "$DATABASE_URL"; limits, suspension, delayed rotation, the REPL, usage into the ledger,
deletion, and provisioning while the server is down (pending, finished by the outbox)."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

from lib.billing import wait_until, wharf_cli
from lib.sandbox import start_pair

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PG_TEMP = os.path.join(REPO, "scripts", "pg-temp.sh")
PSQL = shutil.which("psql") or "/usr/bin/psql"


def pg(cmd, d):
    return subprocess.run([PG_TEMP, cmd, str(d)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cluster():
    # Under /tmp itself: the server runs as `postgres`, which cannot enter pytest's 0700 dirs.
    base = tempfile.mkdtemp(prefix="wharf-pg-")
    d = os.path.join(base, "cluster")
    r = pg("start", d)
    if r.returncode == 3:
        pytest.fail("PostgreSQL server binaries missing: run scripts/install-deps.sh")
    assert r.returncode == 0, r.stderr
    yield d, r.stdout.strip()
    pg("stop", d)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pair(cluster, wharf_bin, tmp_path_factory):
    _, url = cluster
    sb, w = start_pair(tmp_path_factory.mktemp("pgpair"), wharf_bin,
                       wharf_env={"WHARF_POSTGRES_URL": url, "WHARF_USAGE_SAMPLE_S": "1"})
    yield sb, w
    w.stop()
    sb.stop()


def psql(url, sql, timeout=30):
    return subprocess.run([PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", url, "-c", sql],
                          capture_output=True, text=True, timeout=timeout)



def provision(sb, iid, plan="postgres-free", name="pg"):
    status, res = sb.flow("provision", installationId=iid, productId="postgres-db", name=name,
                          metadata={}, billingPlanId=plan)
    assert status == 200 and res["ok"], res
    return res


def secrets_of(body):
    return {s["name"]: s["value"] for s in body.get("secrets", [])}


def ledger(w, rid):
    return dict(w.state_rows("select metric, sum(value) from usage_ledger where resource_id = ? "
                             "group by metric", (rid,)))


def test_a_user_connects_with_psql_and_the_lifecycle_holds(pair):
    sb, w = pair
    iid = sb.install()
    res = provision(sb, iid)
    body = res["response"]
    assert body["status"] == "ready", body
    assert res["findings"] == [], res
    s = secrets_of(body)
    assert set(s) >= {"DATABASE_URL", "DATABASE_URL_UNPOOLED", "DATABASE_READONLY_URL", "PGHOST",
                      "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"}, s
    rid = body["id"]

    # Exactly what a user does with the env var.
    r = psql(s["DATABASE_URL"], "create table notes (id serial primary key, body text); "
                                "insert into notes (body) values ('hello'); select body from notes")
    assert r.returncode == 0 and r.stdout.strip() == "hello", r.stderr
    ro = psql(s["DATABASE_READONLY_URL"], "select count(*) from notes")
    assert ro.returncode == 0 and ro.stdout.strip() == "1", ro.stderr
    assert psql(s["DATABASE_READONLY_URL"], "insert into notes (body) values ('x')").returncode != 0
    env = dict(os.environ, **{k: v for k, v in s.items() if k.startswith("PG")})
    via_env = subprocess.run([PSQL, "-X", "-At", "-c", "select current_database()"], env=env,
                             capture_output=True, text=True, timeout=30)
    assert via_env.stdout.strip() == s["PGDATABASE"], via_env.stderr

    # The plan's statement timeout applies to the user's role.
    assert psql(s["DATABASE_URL"], "show statement_timeout").stdout.strip() == "5s"
    sb.run("update-resource", installationId=iid, resourceId=rid, billingPlanId="postgres-pro")
    wait_until(lambda: psql(s["DATABASE_URL"], "show statement_timeout").stdout.strip() == "30s",
               what="the new plan's limits")

    # Suspended: no new logins; resumed: back.
    sb.run("update-resource", installationId=iid, resourceId=rid, status="suspended")
    wait_until(lambda: psql(s["DATABASE_URL"], "select 1").returncode != 0, what="suspension")
    sb.run("update-resource", installationId=iid, resourceId=rid, status="resumed")
    wait_until(lambda: psql(s["DATABASE_URL"], "select 1").returncode == 0, what="resume")

    # The REPL runs as the resource's role and renders tables.
    status, out = sb.flow("repl", installationId=iid, resourceId=rid, input="select body from notes")
    assert status == 200 and "hello" in json.dumps(out["response"]), out
    status, out = sb.flow("repl", installationId=iid, resourceId=rid, readOnly=True,
                          input="insert into notes (body) values ('no')")
    assert "hello" not in json.dumps(out["response"]) and out["status"] == 200, out
    assert psql(s["DATABASE_URL"], "select count(*) from notes").stdout.strip() == "1"

    # Rotation with a delay: old and new credentials both work until the old expire.
    rot = sb.run("rotate-secrets", installationId=iid, resourceId=rid,
                 delayOldSecretsExpirationHours=0.001)  # 3.6 s
    new = secrets_of(rot["response"])
    assert new["DATABASE_URL"] != s["DATABASE_URL"]
    assert psql(new["DATABASE_URL"], "select count(*) from notes").stdout.strip() == "1"
    assert psql(s["DATABASE_URL"], "select 1").returncode == 0
    wait_until(lambda: psql(s["DATABASE_URL"], "select 1").returncode != 0, timeout=30,
               what="old credentials expire")
    assert psql(new["DATABASE_URL"], "insert into notes (body) values ('after')").returncode == 0

    # Usage sampled from the server into the same ledger billing reads, and billed: the
    # postgres-pro plan prices storage and transactions.
    wait_until(lambda: ledger(w, rid).get("transactions", 0) > 0 and
               ledger(w, rid).get("storageBytes", 0) > 0, what="sampled usage")
    r = wharf_cli(w, "billing", "statement", "--installation", iid)
    assert r.returncode == 0, r.stderr
    statement = json.dumps(json.loads(r.stdout))
    assert "transactions" in statement and "storage" in statement, statement

    # Delete: the database and its roles are dropped; a repeated delete succeeds.
    assert sb.run("delete-resource", installationId=iid, resourceId=rid)["ok"]
    wait_until(lambda: psql(new["DATABASE_URL"], "select 1").returncode != 0, what="dropped")
    assert sb.flow("delete-resource", installationId=iid, resourceId=rid)[0] == 200


def test_a_preview_deployment_gets_a_branch_database_with_its_own_logins(pair):
    """flows.md F17 on PostgreSQL: CREATE DATABASE … TEMPLATE, handed to the branch's roles."""
    sb, w = pair
    iid = sb.install()
    body = provision(sb, iid, name="pg-branch")["response"]
    rid, s = body["id"], secrets_of(body)
    assert psql(s["DATABASE_URL"], "create table t (v text); insert into t values ('main')"
                ).returncode == 0
    out = sb.run("deploy", installationId=iid, resourceId=rid, action="branch", waitMs=30000)
    assert out["ok"] is True and out["findings"] == [], out
    (run,) = out["checkRuns"]
    assert run["conclusion"] == "succeeded", run
    rec = requests.get(f"{sb.base}/_sandbox/deployments/{out['deploymentId']}", timeout=10).json()
    last = rec["actions"][f"{rid}/branch"]["updates"][-1]["body"]
    assert last["status"] == "succeeded", last
    branch = {x["name"]: x["value"] for x in last["outcomes"][0]["secrets"]}
    assert branch["PGDATABASE"] != s["PGDATABASE"] and branch["PGUSER"] != s["PGUSER"]
    # The branch's own login owns the copied table: it reads and writes it.
    r = psql(branch["DATABASE_URL"], "insert into t values ('branch'); select string_agg(v, ',' "
                                     "order by v) from t")
    assert r.returncode == 0 and r.stdout.strip() == "branch,main", r.stderr
    assert psql(branch["DATABASE_READONLY_URL"], "select count(*) from t").stdout.strip() == "2"
    assert psql(s["DATABASE_URL"], "select count(*) from t").stdout.strip() == "1"
    # The resource's login cannot open the branch, nor the branch's the resource.
    other = branch["DATABASE_URL"].replace(branch["PGPASSWORD"], s["PGPASSWORD"]).replace(
        branch["PGUSER"], s["PGUSER"])
    assert psql(other, "select 1").returncode != 0
    # Cleanup drops the database and its roles.
    sb.run("webhook", type="deployment.integration.action.cleanup", installationId=iid,
           payload={"installationId": iid, "resourceId": rid, "action": "branch",
                    "deployment": {"id": out["deploymentId"]}})
    wait_until(lambda: psql(branch["DATABASE_URL"], "select 1").returncode != 0,
               what="branch dropped")
    assert psql(s["DATABASE_URL"], "select count(*) from t").stdout.strip() == "1"


def test_server_down_during_provision_finishes_when_it_returns(cluster, wharf_bin, tmp_path):
    d, url = cluster
    sb, w = start_pair(tmp_path, wharf_bin, wharf_env={"WHARF_POSTGRES_URL": url})
    try:
        iid = sb.install()
        assert pg("stop", d).returncode == 0
        try:
            res = provision(sb, iid, name="later")
            assert res["response"]["status"] == "pending", res
            assert not res["response"].get("secrets"), res
            rid = res["response"]["id"]
        finally:
            assert pg("restart", d).returncode == 0
        wait_until(lambda: sb.state()["resources"][iid][rid].get("secrets"), timeout=90,
                   what="secrets pushed once the server is back")
        s = {x["name"]: x["value"] for x in sb.state()["resources"][iid][rid]["secrets"]}
        assert psql(s["DATABASE_URL"], "select 1").stdout.strip() == "1"
        status, g = sb.flow("get-resource", installationId=iid, resourceId=rid)
        assert g["response"]["status"] == "ready", g
    finally:
        w.stop()
        sb.stop()
