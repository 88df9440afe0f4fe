"""Account information (vercel-api.md §4.2) through the real wharf-sandbox: read with Get
Account Info after a first install and again on integration-configuration.transferred, and
shown (team, contact) on the dashboard."""
import requests

import pytest

from lib import api
from lib.billing import wait_until
from lib.sandbox import start_pair


@pytest.fixture(scope="module")
def pair(wharf_bin, tmp_path_factory):
    sb, w = start_pair(tmp_path_factory.mktemp("account"), wharf_bin)
    yield sb, w
    w.stop()
    sb.stop()


def account_reads(sb, iid):
    return [e for e in sb.log() if e.get("method") == "GET"
            and e.get("url", "").endswith(f"/v1/installations/{iid}/account")]


def dashboard_home(sb, w, iid):
    out = sb.run("sso", installationId=iid)
    r = requests.get(out["redirectUrl"], allow_redirects=False, timeout=30)
    assert r.status_code == 303, r.text
    session = r.headers["Set-Cookie"].partition("=")[2].split(";")[0]
    r = requests.get(w.url("/dashboard"), cookies={"wharf_session": session}, timeout=30)
    assert r.status_code == 200, r.text
    return r.text


def test_account_read_after_install_and_on_transfer_and_shown(pair):
    sb, w = pair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid, team="Acme Rockets")
    wait_until(lambda: [e for e in account_reads(sb, iid) if e["status"] == 200], timeout=30,
               what="Get Account Info after the install")
    assert len(account_reads(sb, iid)) == 1
    account = sb.state()["installations"][iid]["account"]
    html = dashboard_home(sb, w, iid)
    assert 'id="account"' in html, html
    assert "Acme Rockets" in html
    assert account["contact"]["email"] in html

    # A re-install (Upsert of an existing installation) does not read it again ...
    sb.run("install", installationId=iid, team="Acme Rockets")
    # ... a transfer to another team does.
    res = sb.run("webhook", type="integration-configuration.transferred", installationId=iid)
    assert res["ok"], res
    wait_until(lambda: len([e for e in account_reads(sb, iid) if e["status"] == 200]) == 2,
               timeout=30, what="Get Account Info after the transfer")


def test_another_installation_shows_its_own_account(pair):
    sb, w = pair
    a, b = api.new_installation_id(), api.new_installation_id()
    sb.run("install", installationId=a, team="Team Alpha")
    sb.run("install", installationId=b, team="Team Beta")
    for iid in (a, b):
        wait_until(lambda: account_reads(sb, iid), timeout=30, what="account read")
    html = dashboard_home(sb, w, b)
    assert "Team Beta" in html and "Team Alpha" not in html
