"""The sandbox's deployment flow (flows.md F17) against a partner that implements deployment
actions and checks (a proxy in front of a real Wharf, lib/partner_proxy.DeployPartner): the
sandbox connects the resource to a project, creates a deployment, sends
deployment.integration.action.start and deployment.checkrun.start, and judges the partner's
PATCHes — a well-behaved partner passes, each misbehaviour is named."""
import pytest
import requests

from lib.partner_proxy import DeployPartner
from lib.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox, sandbox_bin
from lib.wharf import Wharf, free_port


class Stack:
    def __init__(self, tmp, wharf_bin, mode="good", api_base="/"):
        wport = free_port()
        wharf_url = f"http://127.0.0.1:{wport}"
        self.sb = Sandbox(sandbox_bin(), tmp / "sandbox", None)
        self.partner = DeployPartner(wharf_url, self.sb.base, SANDBOX_CLIENT_SECRET, mode=mode,
                                     api_base=api_base)
        self.sb.partner_url = self.partner.url
        self.sb.start()
        self.w = Wharf(wharf_bin, tmp / "wharf", f"{self.sb.base}/.well-known/jwks", self.sb.base,
                       env={"WHARF_LISTEN": f"127.0.0.1:{wport}",
                            "INTEGRATION_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
                            "WHARF_VERCEL_API_URL": self.sb.base},
                       client_id=SANDBOX_CLIENT_ID).start()
        self.icfg = self.sb.run("install")["installationId"]
        self.rid = self.sb.run("provision", installationId=self.icfg, productId="sqlite-db", billingPlanId="sqlite-free",
                               name="app-db")["resourceId"]

    def deploy(self, **params):
        return self.sb.run("deploy", installationId=self.icfg, resourceId=self.rid, **params)

    def recorded(self, deployment_id):
        r = requests.get(f"{self.sb.base}/_sandbox/deployments/{deployment_id}", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def close(self):
        self.w.stop()
        self.sb.stop()
        self.partner.stop()


@pytest.fixture
def stack_of(tmp_path, wharf_bin):
    made = []

    def make(mode="good", api_base="/"):
        s = Stack(tmp_path / mode, wharf_bin, mode=mode, api_base=api_base)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.mark.parametrize("api_base", ["/", "/api/"])
def test_a_partner_that_reports_correctly_passes(stack_of, api_base):
    s = stack_of(api_base=api_base)
    res = s.deploy(action="branch-db", cancel=True, cleanup=True)
    assert res["ok"] is True, res
    assert res["findings"] == [], res["findings"]
    (action,) = res["actions"]
    assert action["status"] == "succeeded" and action["findings"] == [] and action["updates"] == 2
    # The partner registered its check on project-connected; the run completed.
    (run,) = res["checkRuns"]
    assert run["status"] == "completed" and run["conclusion"] == "succeeded", run
    assert res["deployment"]["readyState"] == "READY"
    # Every webhook of the flow reached the partner, signed, in order.
    assert s.partner.events == [
        "integration-resource.project-connected", "deployment.created",
        "deployment.integration.action.start", "deployment.checkrun.start",
        "deployment.integration.action.cancel", "deployment.integration.action.cleanup"]
    # The partner's calls went through the base it uses and were all accepted.
    paths = [(m, p.split("/")[1 if api_base == "/" else 2], st) for m, p, st in s.partner.calls]
    assert all(st in (200, 201, 202) for _, _, st in paths), s.partner.calls
    # What the sandbox recorded: the outcome's secrets, the run's updates.
    dep = s.recorded(res["deploymentId"])
    act = dep["actions"][f"{s.rid}/branch-db"]
    assert act["updates"][-1]["body"]["outcomes"][0]["secrets"][0]["name"] == "DATABASE_URL"
    assert [u["body"]["status"] for u in dep["checkRuns"][run["id"]]["updates"]] == [
        "running", "completed"]
    # The deployment and project read back as a partner sees them (GET /v13, GET /v9).
    token = s.sb.access_token(s.icfg)
    got = s.sb.vercel("GET", f"/v13/deployments/{res['deploymentId']}", token=token)
    assert got.status_code == 200 and got.json()["id"] == res["deploymentId"]
    got = s.sb.vercel("GET", f"/api/v9/projects/{res['projectId']}", token=token)
    assert got.status_code == 200 and got.json()["id"] == res["projectId"]


def test_a_second_deployment_of_the_same_project_reuses_its_checks(stack_of):
    s = stack_of()
    first = s.deploy()
    assert first["ok"] is True and len(first["checkRuns"]) == 1
    second = s.deploy(projectId=first["projectId"], target="production", action="branch-db")
    assert second["ok"] is True, second
    assert second["deploymentId"] != first["deploymentId"]
    assert len(second["checkRuns"]) == 1
    # Connected once: project-connected was sent once.
    assert s.partner.events.count("integration-resource.project-connected") == 1


@pytest.mark.parametrize("mode, rule", [("bad-order", "action.status-order"),
                                        ("bad-outcomes", "action.outcomes")])
def test_a_misreported_action_is_named(stack_of, mode, rule):
    s = stack_of(mode)
    res = s.deploy(action="branch-db", waitMs=5000)
    assert res["ok"] is False
    (action,) = res["actions"]
    assert any(f.startswith(f"action branch-db: {rule}:") for f in action["findings"]), action
    assert rule in {j["rule"] for j in action["judged"]}


def test_a_silent_partner_is_reported_after_the_wait(stack_of):
    s = stack_of("silent")
    res = s.deploy(action="branch-db", waitMs=1000, checksWaitMs=500)
    assert res["ok"] is False
    (action,) = res["actions"]
    rules = {j["rule"] for j in action["judged"]}
    assert "action.updates" in rules or "action.terminal" in rules, action
    assert res["checkRuns"] == []  # it registered no check


def test_bad_parameters_are_refused_and_change_nothing(stack_of):
    s = stack_of()
    before = s.sb.state().get("deployments", {})
    status, body = s.sb.flow("deploy", installationId=s.icfg, resourceId=s.rid, target="staging",
                             cancel=True, waitMs=-1)
    assert status == 400, body
    fields = body["error"]["fields"]
    assert {"target", "cancel", "waitMs"} <= {f["key"] for f in fields}, fields
    status, body = s.sb.flow("deploy", installationId=s.icfg, resourceId="nope")
    assert status == 404, body
    assert s.sb.state().get("deployments", {}) == before


def test_connectable_account_code_is_exchanged_once_for_a_working_token(stack_of):
    # External-OAuth installs: the sandbox issues a code, the partner exchanges it at
    # /v2/oauth/access_token with its client credentials, exactly once.
    s = stack_of()
    r = requests.post(f"{s.sb.base}/_sandbox/oauth/codes",
                      json={"installationId": s.icfg, "redirectUri": "https://partner.example/cb"},
                      timeout=10)
    assert r.status_code == 200, r.text
    code = r.json()["code"]
    form = {"code": code, "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET,
            "redirect_uri": "https://partner.example/cb", "grant_type": "authorization_code"}
    wrong = dict(form, client_secret="not-the-secret")
    got = requests.post(f"{s.sb.base}/v2/oauth/access_token", data=wrong, timeout=10)
    assert got.status_code == 401 and got.json()["error"] == "invalid_client"
    got = requests.post(f"{s.sb.base}/api/v2/oauth/access_token", data=form, timeout=10)
    assert got.status_code == 200, got.text
    token = got.json()["access_token"]
    assert got.json()["installation_id"] == s.icfg
    # The token works on the installation's API; the code does not work twice.
    assert s.sb.vercel("GET", f"/v1/installations/{s.icfg}/account", token=token).status_code == 200
    again = requests.post(f"{s.sb.base}/v2/oauth/access_token", data=form, timeout=10)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
