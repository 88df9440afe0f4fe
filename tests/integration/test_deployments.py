"""Deployment integration actions and checks (flows.md F17) on the built-in SQLite product,
driven by the real wharf-sandbox's `deploy` flow: the action "branch" makes a consistent copy
of the resource's database for the deployment and reports running -> succeeded with the
branch's credentials as the `resource-secrets` outcome; the project check registered on
project-connected runs on every deployment (and again when rerequested) against the branch;
a repeated start is idempotent, cancel aborts a branch still being made, cleanup and the
resource's deletion drop the branch."""
import os
import threading

import requests

import pytest

from lib.billing import wait_until
from lib.sandbox import add_faults, clear_faults, start_pair
from test_resources import provision, q, secrets_of


@pytest.fixture(scope="module")
def pair(wharf_bin, tmp_path_factory):
    sb, w = start_pair(tmp_path_factory.mktemp("deployments"), wharf_bin)
    yield sb, w
    w.stop()
    sb.stop()



def recorded(sb, deployment_id):
    r = requests.get(f"{sb.base}/_sandbox/deployments/{deployment_id}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def action_record(sb, deployment_id, rid, action="branch"):
    return recorded(sb, deployment_id)["actions"][f"{rid}/{action}"]


def outcome_secrets(sb, deployment_id, rid):
    last = action_record(sb, deployment_id, rid)["updates"][-1]["body"]
    assert last["status"] == "succeeded", last
    (outcome,) = last["outcomes"]
    assert outcome["kind"] == "resource-secrets"
    return {s["name"]: s["value"] for s in outcome["secrets"]}


def action_webhook(sb, iid, rid, deployment_id, kind, action="branch"):
    res = sb.run("webhook", type=f"deployment.integration.action.{kind}", installationId=iid,
                 payload={"installationId": iid, "configuration": {"id": iid},
                          "resourceId": rid, "action": action,
                          "deployment": {"id": deployment_id}})
    assert res["ok"], res


def rows(secrets, sql="select v from t order by v"):
    r = q(secrets, {"sql": sql})
    assert r.status_code == 200, r.text
    return [row[0] for row in r.json()["results"][0]["rows"]]


def test_a_preview_deployment_gets_its_own_branch_database_and_a_passing_check(pair):
    sb, w = pair
    iid = sb.install()
    res = provision(sb, iid, name="app-db")
    rid, parent = res["id"], secrets_of(res)
    assert q(parent, {"statements": [{"sql": "create table t (v text)"},
                                     {"sql": "insert into t values ('before')"}]}).status_code == 200

    out = sb.run("deploy", installationId=iid, resourceId=rid, action="branch",
                 target="preview", rerequest=True)
    assert out["ok"] is True, out
    assert out["findings"] == [], out["findings"]
    (action,) = out["actions"]
    assert action["status"] == "succeeded" and action["findings"] == [], action
    assert action["updates"] == 2  # running, then succeeded
    did = out["deploymentId"]
    first = action_record(sb, did, rid)["updates"][0]["body"]
    assert first["status"] == "running" and first["statusUrl"].startswith("sso:"), first

    # The check registered on project-connected ran on the deployment, and again on rerequest,
    # each time against the branch.
    assert len(out["checkRuns"]) == 2, out["checkRuns"]
    for run in out["checkRuns"]:
        assert run["status"] == "completed" and run["conclusion"] == "succeeded", run
        assert run["findings"] == [], run
    runs = recorded(sb, did)["checkRuns"]
    for run in runs.values():
        final = run["updates"][-1]["body"]
        assert final["externalId"].startswith(rid + "-br-"), final
        assert "Branch database" in final["conclusionText"], final

    # The outcome's credentials open the branch: a copy of the data at the time of the deploy,
    # separate from the resource from then on.
    branch = outcome_secrets(sb, did, rid)
    assert set(branch) == {"DATABASE_URL", "DATABASE_TOKEN", "DATABASE_READONLY_TOKEN"}
    assert branch["DATABASE_URL"] != parent["DATABASE_URL"]
    assert rows(branch) == ["before"]
    assert q(branch, {"sql": "insert into t values ('on-branch')"}).status_code == 200
    assert q(parent, {"sql": "insert into t values ('on-main')"}).status_code == 200
    assert rows(branch) == ["before", "on-branch"]
    assert rows(parent) == ["before", "on-main"]
    # The read-only token is read-only; the resource's own tokens do not open the branch.
    ro = q(branch, {"sql": "insert into t values ('x')"}, token_name="DATABASE_READONLY_TOKEN")
    assert ro.status_code == 403, ro.text
    cross = requests.post(branch["DATABASE_URL"] + "/query", json={"sql": "select 1"}, timeout=30,
                          headers={"Authorization": f"Bearer {parent['DATABASE_TOKEN']}"})
    assert cross.status_code == 401, cross.text

    # Vercel starting the action again reports the same branch, data kept, in order.
    r = requests.post(f"{sb.base}/_sandbox/deployments/{did}/actions",
                      json={"resourceId": rid, "action": "branch"}, timeout=10)
    assert r.status_code == 200, r.text
    action_webhook(sb, iid, rid, did, "start")
    wait_until(lambda: len(action_record(sb, did, rid)["updates"]) == 2 and
               action_record(sb, did, rid)["status"] == "succeeded")
    judged = requests.get(f"{sb.base}/_sandbox/deployments/{did}/judge", timeout=10,
                          params={"resourceId": rid, "action": "branch"}).json()
    assert [f for f in judged["findings"] if f["severity"] == "error"] == [], judged
    again = outcome_secrets(sb, did, rid)
    assert again["DATABASE_URL"] == branch["DATABASE_URL"]
    assert rows(again) == ["before", "on-branch"]

    # Cancel after success leaves the branch; cleanup (deployment deleted for good) drops it.
    action_webhook(sb, iid, rid, did, "cancel")
    assert rows(again) == ["before", "on-branch"]
    action_webhook(sb, iid, rid, did, "cleanup")
    wait_until(lambda: q(again, {"sql": "select 1"}).status_code in (401, 404))
    bid = again["DATABASE_URL"].rstrip("/").rsplit("/", 1)[1]
    wait_until(lambda: not os.path.exists(os.path.join(w.data_dir, "databases", bid + ".db")))
    assert rows(parent) == ["before", "on-main"]


def test_cancel_aborts_a_branch_still_being_made(pair):
    sb, w = pair
    iid = sb.install()
    res = provision(sb, iid, name="cancel-db")
    rid = res["id"]
    # Vercel answers the first reports with 503, so the action is still queued when the
    # deployment is cancelled.
    add_faults(sb, {"method": "PATCH", "pathContains": "/actions/branch", "status": 503,
                    "count": 3})
    result = {}
    t = threading.Thread(target=lambda: result.update(
        sb.run("deploy", installationId=iid, resourceId=rid, action="branch", waitMs=30000)))
    t.start()
    try:
        did = wait_until(lambda: next(
            (d for d, rec in sb.state().get("deployments", {}).items()
             if f"{rid}/branch" in rec.get("actions", {})), None))
        action_webhook(sb, iid, rid, did, "cancel")
        t.join(60)
    finally:
        clear_faults(sb)
    (action,) = result["actions"]
    assert action["status"] == "failed" and action["findings"] == [], result
    last = action_record(sb, did, rid)["updates"][-1]["body"]
    assert last == {"status": "failed", "statusText": "Cancelled", "statusUrl": last["statusUrl"]}
    # Nothing of the branch is left on disk.
    files = [f for f in os.listdir(os.path.join(w.data_dir, "databases"))
             if f.startswith(rid + "-br-")]
    assert files == []


def test_unknown_actions_fail_with_a_reason_and_deletion_drops_branches(pair):
    sb, w = pair
    iid = sb.install()
    res = provision(sb, iid, name="gone-db")
    rid = res["id"]
    out = sb.run("deploy", installationId=iid, resourceId=rid, action="seed-data")
    (action,) = out["actions"]
    assert action["status"] == "failed" and action["findings"] == [], out
    text = action_record(sb, out["deploymentId"], rid, "seed-data")["updates"][-1]["body"]
    assert "Unknown action 'seed-data'" in text["statusText"], text

    out = sb.run("deploy", installationId=iid, resourceId=rid, action="branch")
    assert out["ok"], out
    branch = outcome_secrets(sb, out["deploymentId"], rid)
    assert q(branch, {"sql": "select 1"}).status_code == 200
    assert sb.run("delete-resource", installationId=iid, resourceId=rid)["ok"]
    wait_until(lambda: q(branch, {"sql": "select 1"}).status_code in (401, 404))
    wait_until(lambda: not [f for f in os.listdir(os.path.join(w.data_dir, "databases"))
                            if f.startswith(rid)])
