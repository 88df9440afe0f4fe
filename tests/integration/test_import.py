"""Import (flows.md F14) and reconciliation through the real wharf-sandbox: Vercel's "Import
Existing" sends the browser to Wharf's Import Resource URL; the user is signed in through
provider-initiated SSO, creates a database (or picks one they have), Wharf completes Import
Resource, and only then sends the browser back to Vercel with the state, which the sandbox
checks. The reconcile pass imports again what Vercel lost and reports what Vercel has that
Wharf does not (/metrics, `wharf doctor`), deleting nothing; `wharf import` pushes by hand."""
import json
import re
import subprocess

import requests

import pytest

from lib.billing import wait_until
from lib.sandbox import start_pair
from lib.wharf import base_env
from test_resources import q


@pytest.fixture(scope="module")
def pair(wharf_bin, tmp_path_factory):
    sb, w = start_pair(tmp_path_factory.mktemp("import"), wharf_bin,
                       wharf_env={"WHARF_VERCEL_SSO_URL": "{sandbox}/sso/integrations",
                                  "WHARF_URL_SLUG": "wharf-sandbox",
                                  "WHARF_RECONCILE_S": "1"})
    yield sb, w
    w.stop()
    sb.stop()



def start_import(sb, iid, product="sqlite-db"):
    r = requests.post(f"{sb.base}/_sandbox/imports",
                      json={"installationId": iid, "productId": product}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def open_import_page(url):
    """A browser following Vercel's redirect: signed in by provider-initiated SSO on the way."""
    browser = requests.Session()
    page = browser.get(url, timeout=30)
    assert page.status_code == 200, page.text
    assert page.url.startswith(url.split("?")[0]), page.url  # back on the import page
    return browser, page.text


def form_of(html, form_id=None, resource_id=None):
    forms = re.findall(r"<form[^>]*>.*?</form>", html, re.S)
    for f in forms:
        if form_id and f'id="{form_id}"' not in f:
            continue
        if resource_id and f'value="{resource_id}"' not in f:
            continue
        return {m[0]: m[1].replace("&amp;", "&")
                for m in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', f)}
    raise AssertionError(f"no form {form_id or resource_id} in {html}")


def vercel_resource(sb, iid, rid):
    return sb.state().get("resources", {}).get(iid, {}).get(rid)


def vercel_call(sb, iid, method, path, body=None):
    token = sb.state()["installations"][iid]["accessTokens"][-1]
    return requests.request(method, f"{sb.base}/v1/installations/{iid}{path}", json=body,
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)


def cli(w, sb, *args):
    env = base_env()
    env.update({"INTEGRATION_CLIENT_ID": w.client_id, "INTEGRATION_CLIENT_SECRET": "unused",
                "WHARF_DATA_DIR": w.data_dir, "WHARF_VERCEL_API_URL": sb.base})
    if w.state_url:  # WHARF_TEST_STATE=postgres
        env["WHARF_STATE_URL"] = w.state_url
    return subprocess.run([w.binary, *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_database_created_in_the_import_flow_is_imported_before_the_redirect(pair):
    sb, w = pair
    iid = sb.install()
    imp = start_import(sb, iid)
    browser, html = open_import_page(imp["url"])
    fields = form_of(html, form_id="import-new")
    assert fields["state"] == imp["state"] and fields["return"] == imp["return"]
    fields.update({"name": "made-for-import", "plan": "sqlite-db/sqlite-free"})
    done = browser.post(w.url("/dashboard/import"), data=fields, allow_redirects=False,
                        timeout=30)
    assert done.status_code == 303, done.text
    back = done.headers["Location"]
    assert back.startswith(imp["return"] + "?"), back
    rid = re.search(r"resource_id=([^&]+)", back).group(1)
    assert f"state={imp['state']}" in back and f"installation_id={iid}" in back
    # Vercel has the resource before the browser is back: owned, its plan, its secrets.
    rec = vercel_resource(sb, iid, rid)
    assert rec and rec["importedAt"] and rec["ownership"] == "owned", rec
    assert rec["name"] == "made-for-import" and rec["billingPlan"]["id"] == "sqlite-free"
    secrets = {s["name"]: s["value"] for s in rec["secrets"]}
    assert q(secrets, {"sql": "select 1"}).status_code == 200
    # Vercel's completion page accepts the state once.
    final = browser.get(back, timeout=30)
    assert final.status_code == 200, final.text
    assert sb.state()["imports"][imp["state"]]["status"] == "completed"
    assert browser.get(back, timeout=30).status_code == 400  # single-use
    # Resubmitting the form (same state) finds the database it made: no second one.
    again = browser.post(w.url("/dashboard/import"), data=fields, allow_redirects=False,
                         timeout=30)
    assert again.status_code == 303 and f"resource_id={rid}" in again.headers["Location"]
    live = [r for r in sb.state()["resources"][iid].values() if not r.get("deleted")]
    assert len(live) == 1, live


def test_an_existing_database_is_imported_again_as_an_upsert(pair):
    sb, w = pair
    iid = sb.install()
    rid = sb.run("provision", installationId=iid, productId="sqlite-db", name="had-it",
                 metadata={"durability": "full"}, billingPlanId="sqlite-free")["resourceId"]
    assert "importedAt" not in vercel_resource(sb, iid, rid)
    imp = start_import(sb, iid)
    browser, html = open_import_page(imp["url"])
    fields = form_of(html, resource_id=rid)
    done = browser.post(w.url("/dashboard/import"), data=fields, allow_redirects=False,
                        timeout=30)
    assert done.status_code == 303, done.text
    assert vercel_resource(sb, iid, rid)["importedAt"]
    assert browser.get(done.headers["Location"], timeout=30).status_code == 200


def test_bad_import_links_change_nothing(pair):
    sb, w = pair
    iid = sb.install()
    imp = start_import(sb, iid)
    # A return URL that leaves Vercel is refused before anything else.
    evil = imp["url"].replace(requests.utils.quote(imp["return"], safe=""),
                              requests.utils.quote("https://evil.example/steal", safe=""))
    r = requests.get(evil, timeout=30)
    assert r.status_code == 400 and "evil.example" not in r.headers.get("Location", ""), r.text
    browser, html = open_import_page(imp["url"])
    fields = form_of(html, form_id="import-new")
    fields["return"] = "https://evil.example/steal"
    fields.update({"name": "x", "plan": "sqlite-db/sqlite-free"})
    r = browser.post(w.url("/dashboard/import"), data=fields, allow_redirects=False, timeout=30)
    assert r.status_code == 400, r.text
    assert not sb.state().get("resources", {}).get(iid)


def test_reconcile_reimports_what_vercel_lost_and_reports_what_it_does_not_know(pair):
    sb, w = pair
    iid = sb.install()
    rid = sb.run("provision", installationId=iid, productId="sqlite-db", name="kept",
                 metadata={"durability": "full"}, billingPlanId="sqlite-free")["resourceId"]
    # Vercel loses the resource (a removal Vercel did not tell us about).
    assert vercel_call(sb, iid, "DELETE", f"/resources/{rid}").status_code in (200, 204)
    assert vercel_resource(sb, iid, rid)["deleted"]
    wait_until(lambda: not vercel_resource(sb, iid, rid)["deleted"], timeout=30,
               what="reconcile re-import")
    assert vercel_resource(sb, iid, rid).get("importedAt")
    # Vercel has one Wharf never had: reported, never deleted.
    ghost = vercel_call(sb, iid, "PUT", "/resources/res_ghost",
                        {"productId": "sqlite-db", "name": "ghost", "status": "ready"})
    assert ghost.status_code == 200, ghost.text

    def unknown_metric():
        text = requests.get(w.url("/metrics"), timeout=10).text
        m = re.search(r"^wharf_reconcile_unknown_resources (\S+)$", text, re.M)
        return m and float(m.group(1)) >= 1

    wait_until(unknown_metric, timeout=30, what="unknown resource in /metrics")
    assert not vercel_resource(sb, iid, "res_ghost")["deleted"]
    doc = cli(w, sb, "doctor")
    assert doc.returncode == 1, doc.stderr
    report = json.loads(doc.stdout)
    mine = [r for r in report["resources"] if r["installation"] == iid]
    assert mine and mine[0]["unknownAtVercel"] == ["res_ghost"], report
    assert mine[0]["missingAtVercel"] == []
    # `wharf import` pushes by hand (an upsert).
    out = cli(w, sb, "import", iid, "--all")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"installation": iid, "resource": rid, "imported": True}]
    bad = cli(w, sb, "import", iid, "res_nope")
    assert bad.returncode == 1 and json.loads(bad.stdout)[0]["imported"] is False
