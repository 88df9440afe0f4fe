"""The sandbox's inspector page rendered by real headless Chromium (Debian's `chromium`):
its script runs without errors and shows the installation, the resource with the env vars
a project receives, billing data and the exchange log."""
import re
import subprocess
import time


from lib import api
from test_resources import provision, secrets_of
from lib.sandbox import start_pair

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def render(url, tmp_path, extra=()):
    out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'chromium'}",
                          "--virtual-time-budget=5000", *extra, url],
                         capture_output=True, text=True, timeout=120)
    return out


def test_inspector_renders_state_in_a_real_browser(wharf_bin, tmp_path):
    sb, w = start_pair(tmp_path, wharf_bin)
    try:
        iid = api.new_installation_id()
        sb.run("install", installationId=iid)
        res = provision(sb, iid)
        rid, s = res["id"], secrets_of(res)
        token = sb.access_token(iid)
        now = time.time()
        body = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "eod": time.strftime("%Y-%m-%dT23:59:59Z", time.gmtime()),
                "period": {"start": time.strftime("%Y-%m-01T00:00:00Z", time.gmtime()),
                           "end": time.strftime("%Y-%m-%dT23:59:59Z", time.gmtime(now + 20 * 86400))},
                "billing": [{"billingPlanId": "sqlite-free", "resourceId": rid, "name": "Base fee",
                             "price": "0.00", "quantity": 1, "units": "month", "total": "0.00"}],
                "usage": [{"resourceId": rid, "name": "Storage", "type": "total", "units": "GB",
                           "dayValue": 0.25, "periodValue": 0.25}]}
        assert sb.vercel("POST", f"/v1/installations/{iid}/billing", token, body).status_code == 201

        out = render(sb.base + "/_sandbox/inspector", tmp_path, ["--dump-dom"])
        dom = out.stdout
        assert out.returncode == 0, out.stderr[-2000:]
        # Rendered by the page's script from the control API, not present in the HTML source.
        assert iid in dom
        assert rid in dom and s["DATABASE_TOKEN"] in dom and "preview" in dom
        assert "Base fee: 1 month × 0.00 = 0.00" in dom
        assert re.search(r"to-partner", dom) and "PUT http" in dom
        errors = [l for l in out.stderr.splitlines()
                  if "CONSOLE" in l and ("Error" in l or "Uncaught" in l)]
        assert errors == [], errors

        shot = tmp_path / "inspector.png"
        render(sb.base + "/_sandbox/inspector", tmp_path,
               ["--window-size=1200,1400", f"--screenshot={shot}"])
        assert shot.exists() and shot.stat().st_size > 10000
    finally:
        w.stop()
        sb.stop()
