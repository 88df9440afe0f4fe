"""`wharf-sandbox check`, the conformance runner a provider adds to CI: run against a real Wharf
(the built-in SQLite product and the `http` product's example backend) it passes every check
and exits 0; against a deliberately broken partner it names each fault, exits 1, and writes
the findings to JUnit XML and JSON."""
import json
import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from lib.backend_example import ExampleBackend
from lib.partner_proxy import BrokenPartner, DeployPartner
from lib.sandbox import sandbox_bin
from lib.wharf import CLIENT_ID, CLIENT_SECRET, Wharf, base_env, free_port

CHECK_TIMEOUT = 240


def run_check(*args, env=None, cwd=None):
    e = base_env()
    e.update(env or {})
    return subprocess.run([sandbox_bin(), "check", *args], env=e, cwd=cwd, capture_output=True,
                          text=True, timeout=CHECK_TIMEOUT)


class Partner:
    """A real Wharf whose Vercel is the sandbox `check` will start on `sandbox_port`."""

    def __init__(self, tmp, wharf_bin, env=None, catalog=None):
        self.sandbox_port = free_port()
        sandbox = f"http://127.0.0.1:{self.sandbox_port}"
        env = dict(env or {})
        env["WHARF_VERCEL_API_URL"] = sandbox
        if catalog:
            path = tmp / "catalog.json"
            path.write_text(json.dumps(catalog))
            env["WHARF_CATALOG"] = str(path)
        self.w = Wharf(wharf_bin, tmp / "wharf", f"{sandbox}/.well-known/jwks", sandbox, env=env)
        # /readyz waits for the JWKS, which only exists once `check` runs: wait for liveness.
        self.w.start(wait_ready=False)
        self.w.wait_ready(path="/healthz")
        self.url = self.w.url("").rstrip("/")

    def check(self, tmp, *args, partner_url=None):
        junit, report = tmp / "check.xml", tmp / "check.json"
        r = run_check("--partner-url", partner_url or self.url, "--client-id", CLIENT_ID,
                      "--client-secret", CLIENT_SECRET, "--listen",
                      f"127.0.0.1:{self.sandbox_port}", "--junit", str(junit), "--json",
                      str(report), *args)
        parsed = json.loads(report.read_text()) if report.exists() else None
        tree = ET.parse(junit) if junit.exists() else None
        return r, parsed, tree

    def stop(self):
        self.w.stop()


def checks_by_id(report):
    return {(c["id"], c.get("product", "")): c for c in report["checks"]}


def junit_cases(tree):
    return {case.get("name"): case for case in tree.getroot().iter("testcase")}


def test_list_names_every_check_with_its_level():
    r = run_check("--list")
    assert r.returncode == 0, r.stderr
    lines = [line.split() for line in r.stdout.splitlines() if line.strip()]
    ids = {parts[0]: parts[1] for parts in lines if len(parts) >= 2}
    for required in ("install", "provision", "resource.get", "sso", "webhook.signature",
                     "uninstall"):
        assert ids.get(required) == "required", r.stdout
    for advice in ("resource.rotate-secrets", "transfer"):
        assert ids.get(advice) == "advice", r.stdout


def test_usage_errors_exit_2():
    r = run_check("--client-secret", "x")  # no partner URL
    assert r.returncode == 2
    assert "--partner-url" in r.stderr
    r = run_check("--partner-url", "http://127.0.0.1:9", "--client-secret", "x", "--only",
                  "no-such-check")
    assert r.returncode == 2
    assert "no-such-check" in r.stderr


def test_wharf_with_sqlite_is_conformant(tmp_path, wharf_bin):
    p = Partner(tmp_path, wharf_bin)
    try:
        r, report, tree = p.check(tmp_path, "--product", "sqlite-db", "--action", "branch")
    finally:
        p.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "conformant" in r.stdout and "NOT conformant" not in r.stdout
    assert report["ok"] is True
    s = report["summary"]
    assert s["failed"] == 0 and s["warning"] == 0 and s["skipped"] == 0, report
    by_id = checks_by_id(report)
    # Wharf's deployment action (a branch database) and the check it registers on
    # project-connected both pass.
    assert by_id[("deployment.action", "sqlite-db")]["status"] == "passed"
    assert by_id[("deployment.checks", "sqlite-db")]["status"] == "passed"
    for cid in ("install", "install.get", "sso", "webhook.delivery", "webhook.signature",
                "uninstall"):
        assert by_id[(cid, "")]["status"] == "passed", by_id[(cid, "")]
    for cid in ("plans.product", "provision", "resource.get", "resource.list", "resource.update",
                "resource.change-plan", "resource.rotate-secrets", "resource.repl", "transfer",
                "resource.delete"):
        assert by_id[(cid, "sqlite-db")]["status"] == "passed", by_id[(cid, "sqlite-db")]
    suite = tree.getroot().find("testsuite")
    assert suite.get("failures") == "0" and int(suite.get("tests")) == len(report["checks"])
    assert "provision [sqlite-db]" in junit_cases(tree)


def test_wharf_selling_the_example_backend_is_conformant(tmp_path, wharf_bin):
    # The `http` product: Wharf in front of examples/backend/server.py.
    from test_http_product import SECRET, PRODUCT, catalog
    wport = free_port()
    backend = ExampleBackend(tmp_path / "backend", f"http://127.0.0.1:{wport}",
                             product_id=PRODUCT, secret=SECRET)
    try:
        p = Partner(tmp_path, wharf_bin, catalog=catalog(backend.url),
                    env={"ACME_BACKEND_SECRET": SECRET, "WHARF_LISTEN": f"127.0.0.1:{wport}"})
        try:
            r, report, _ = p.check(tmp_path, "--product", PRODUCT)
        finally:
            p.stop()
    finally:
        backend.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    by_id = checks_by_id(report)
    assert by_id[("provision", PRODUCT)]["status"] == "passed"
    assert by_id[("resource.repl", PRODUCT)]["status"] == "passed"
    assert report["summary"]["failed"] == 0, report["summary"]


def test_broken_partner_fails_with_the_expected_findings(tmp_path, wharf_bin):
    p = Partner(tmp_path, wharf_bin)
    broken = BrokenPartner(p.url, {"provision-without-secrets", "webhooks-unverified",
                                   "get-installation-500"})
    try:
        r, report, tree = p.check(tmp_path, "--product", "sqlite-db", partner_url=broken.url)
    finally:
        broken.stop()
        p.stop()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "NOT conformant" in r.stdout
    assert report["ok"] is False
    by_id = checks_by_id(report)

    def failed(cid, product=""):
        c = by_id[(cid, product)]
        assert c["status"] == "failed", c
        return " ".join(c["findings"])

    assert "secrets" in failed("provision", "sqlite-db")
    assert "500" in failed("install.get")
    assert failed("webhook.signature")
    # Everything not broken still passes; what depends on the failed provision is skipped.
    for cid in ("install", "webhook.delivery", "sso", "uninstall"):
        assert by_id[(cid, "")]["status"] == "passed", by_id[(cid, "")]
    assert by_id[("resource.get", "sqlite-db")]["status"] == "skipped"
    # The report carries the exchanges behind each failure.
    prov = by_id[("provision", "sqlite-db")]
    assert prov["exchanges"] and prov.get("exchangeDetails"), prov
    detail = prov["exchangeDetails"][0]
    assert detail["method"] == "POST" and "/resources" in detail["url"]
    # JUnit: one <failure> per failed required check, skipped ones marked.
    cases = junit_cases(tree)
    assert cases["provision [sqlite-db]"].find("failure") is not None
    assert cases["webhook.signature"].find("failure") is not None
    assert cases["install"].find("failure") is None
    assert cases["resource.get [sqlite-db]"].find("skipped") is not None
    suite = tree.getroot().find("testsuite")
    assert int(suite.get("failures")) == report["summary"]["failed"] == 3


def test_only_runs_the_named_checks(tmp_path, wharf_bin):
    p = Partner(tmp_path, wharf_bin)
    broken = BrokenPartner(p.url, {"webhooks-unverified"})
    try:
        r, report, _ = p.check(tmp_path, "--only", "install,webhook.", partner_url=broken.url)
    finally:
        broken.stop()
        p.stop()
    assert r.returncode == 1, r.stdout
    ran = {c["id"] for c in report["checks"] if c["status"] != "skipped"}
    assert ran == {"install", "webhook.delivery", "webhook.signature"}, report["checks"]
    # A required check that fails is the only reason for the non-zero exit.
    assert [c["id"] for c in report["checks"] if c["status"] == "failed"] == ["webhook.signature"]


@pytest.mark.parametrize("mode", ["good", "bad-order"])
def test_deployment_checks_judge_the_partners_reports(tmp_path, wharf_bin, mode):
    p = Partner(tmp_path, wharf_bin)
    partner = DeployPartner(p.url, f"http://127.0.0.1:{p.sandbox_port}", CLIENT_SECRET, mode=mode)
    try:
        r, report, tree = p.check(tmp_path, "--product", "sqlite-db", "--action", "branch-db",
                                  "--only", "deployment.", partner_url=partner.url)
    finally:
        partner.stop()
        p.stop()
    by_id = checks_by_id(report)
    checks = by_id[("deployment.checks", "sqlite-db")]
    assert checks["status"] == "passed", checks
    action = by_id[("deployment.action", "sqlite-db")]
    if mode == "good":
        assert action["status"] == "passed", action
        assert r.returncode == 0, r.stdout
    else:
        # Advice: named as a warning, in JUnit's system-err, and the run still passes.
        assert action["status"] == "warning", action
        assert any("action.status-order" in f for f in action["findings"]), action
        assert r.returncode == 0, r.stdout
        case = junit_cases(tree)["deployment.action [sqlite-db]"]
        assert case.find("failure") is None and "status-order" in case.find("system-err").text
