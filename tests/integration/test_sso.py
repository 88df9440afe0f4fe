"""SSO into the dashboard over plain HTTP against real wharf and wharf-sandbox processes: a
configured Redirect Login URL path, the session cookie's attributes behind an https public
URL, the dashboard's security headers, and the `wharf sso-link` command. The browser suite
(tests/browser) covers the pages themselves."""
import subprocess
import time
from urllib.parse import urlsplit

import pytest
import requests

from lib import api
from lib.sandbox import start_pair
from lib.wharf import CLIENT_ID, CLIENT_SECRET, base_env

PUBLIC = "https://db.example.test"


@pytest.fixture(scope="module")
def https_pair(wharf_bin, tmp_path_factory):
    sb, w = start_pair(tmp_path_factory.mktemp("sso"), wharf_bin,
                       wharf_env={"WHARF_PUBLIC_URL": PUBLIC,
                                  "WHARF_SSO_CALLBACK_PATH": "/auth/vercel"},
                       sandbox_env={"SANDBOX_REDIRECT_LOGIN_URL": "{wharf}/auth/vercel"})
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    yield sb, w, iid
    w.stop()
    sb.stop()


def callback(sb, iid, **context):
    """Runs Vercel's side of Open in Provider and follows its redirect to wharf, once."""
    out = sb.run("sso", installationId=iid, **context)
    return requests.get(out["redirectUrl"], allow_redirects=False, timeout=30), out


def test_configured_callback_path_and_secure_cookie(https_pair):
    sb, w, iid = https_pair
    r, out = callback(sb, iid)
    assert urlsplit(out["redirectUrl"]).path == "/auth/vercel"
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == "/dashboard"
    cookie = r.headers["Set-Cookie"]
    name, _, rest = cookie.partition("=")
    value = rest.split(";")[0]
    assert name == "wharf_session" and len(value) == 43
    attrs = [a.strip() for a in cookie.split(";")[1:]]
    assert {"HttpOnly", "SameSite=Lax", "Secure", "Path=/"} <= set(attrs), cookie
    # The default path is not served once another is configured.
    assert requests.get(w.url("/sso/callback?mode=sso&code=x&state=y"), timeout=30).status_code == 404

    page = requests.get(w.url("/dashboard"), cookies={"wharf_session": value}, timeout=30)
    assert page.status_code == 200 and iid in page.text
    h = page.headers
    assert h["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in h["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
    assert "'unsafe-inline'" not in h["Content-Security-Policy"]
    assert h["Cache-Control"] == "no-store" and h["X-Frame-Options"] == "DENY"
    # No inline script or style anywhere: the CSP would block it.
    assert "<script>" not in page.text and "style=" not in page.text


def test_absolute_url_on_the_public_origin_is_followed(https_pair):
    sb, _, iid = https_pair
    r, _ = callback(sb, iid, url=f"{PUBLIC}/dashboard/usage?x=1")
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard/usage?x=1"
    r, _ = callback(sb, iid, url="https://db.example.test.evil.example/dashboard")
    assert r.status_code == 400 and "Set-Cookie" not in r.headers
    assert "outside this site" in r.text


def test_callback_refuses_bad_parameters_without_spending_the_code(https_pair):
    sb, w, iid = https_pair
    out = sb.run("sso", installationId=iid)
    url = out["redirectUrl"]
    for broken in (url.replace("mode=sso", "mode=login"), url.replace("&state=", "&x="),
                   url + "&url=%2F%2Fevil.example"):
        r = requests.get(broken, allow_redirects=False, timeout=30)
        assert r.status_code == 400, broken
        assert "Set-Cookie" not in r.headers
        assert r.headers["Content-Type"].startswith("text/html")
    # Nothing above reached Vercel: the code still signs in.
    r = requests.get(url, allow_redirects=False, timeout=30)
    assert r.status_code == 303 and "wharf_session=" in r.headers["Set-Cookie"]


def test_expired_code_is_refused_and_creates_no_session(wharf_bin, tmp_path):
    sb, w = start_pair(tmp_path, wharf_bin, sandbox_env={"SANDBOX_SSO_CODE_TTL_MS": "1"})
    try:
        iid = api.new_installation_id()
        sb.run("install", installationId=iid)
        out = sb.run("sso", installationId=iid)
        time.sleep(0.05)
        r = requests.get(out["redirectUrl"], allow_redirects=False, timeout=30)
        assert r.status_code == 400 and "Set-Cookie" not in r.headers
        assert "expired" in r.text
    finally:
        w.stop()
        sb.stop()


def test_unsigned_in_requests_are_refused(https_pair):
    _, w, _ = https_pair
    r = requests.get(w.url("/dashboard"), timeout=30)
    assert r.status_code == 401 and "not signed in" in r.text
    r = requests.get(w.url("/dashboard"), cookies={"wharf_session": "A" * 43}, timeout=30)
    assert r.status_code == 401
    r = requests.get(w.url("/dashboard/api/sso-link"), timeout=30)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def run_sso_link(wharf_bin, *args, slug="my-db"):
    env = base_env()
    env.update({"INTEGRATION_CLIENT_ID": CLIENT_ID, "INTEGRATION_CLIENT_SECRET": CLIENT_SECRET})
    if slug:
        env["WHARF_URL_SLUG"] = slug
    return subprocess.run([wharf_bin, "sso-link", *args], env=env, capture_output=True, text=True,
                          timeout=30)


def test_sso_link_command(wharf_bin):
    out = run_sso_link(wharf_bin, "icfg_abc", "resource_id=res_1", "url=/dashboard/usage")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("https://vercel.com/sso/integrations/my-db/icfg_abc"
                                  "?resource_id=res_1&url=%2Fdashboard%2Fusage")
    out = run_sso_link(wharf_bin, "icfg_abc", "--vercel-sso-url", "http://127.0.0.1:9/sso/integrations")
    assert out.stdout.strip() == "http://127.0.0.1:9/sso/integrations/my-db/icfg_abc"
    out = run_sso_link(wharf_bin, "icfg_abc", "code=stolen")
    assert out.returncode == 2 and "code=stolen" in out.stderr
    out = run_sso_link(wharf_bin, "icfg_abc", slug=None)
    assert out.returncode == 2 and "WHARF_URL_SLUG" in out.stderr
    out = run_sso_link(wharf_bin)
    assert out.returncode == 2 and "installation id" in out.stderr
