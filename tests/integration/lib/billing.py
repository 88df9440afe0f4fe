"""Billing test helpers: a sandbox + wharf pair whose clocks move together, and readers of
what each side recorded."""
import json
import subprocess
import time
from datetime import datetime, timezone

import requests

from .sandbox import advance_sandbox_clock, move_sandbox_clock, start_pair
from .wharf import HTTP_TIMEOUT, base_env

HOUR = 3600 * 1000
DAY = 24 * HOUR


def ms_of(iso):
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def iso_of(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def start_billing_pair(tmp, wharf_bin, catalog=None, **env):
    wharf_env = {"WHARF_TEST_CLOCK": "1", "WHARF_BILLING_INTERVAL_S": "3600"}
    wharf_env.update({k: str(v) for k, v in env.items()})
    return start_pair(tmp, wharf_bin, catalog=catalog, wharf_env=wharf_env)


def move_wharf_clock(w, set_ms=None, advance_ms=None, timeout=60):
    body = {"setMs": set_ms} if set_ms is not None else {"advanceMs": advance_ms}
    r = requests.post(w.url("/ops/clock"), json=body, timeout=timeout)
    assert r.status_code == 200, r.text
    return r.json()


def advance(sb, w, ms):
    """Moves Vercel's clock, then ours (which runs a billing pass and drains the outbox)."""
    advance_sandbox_clock(sb, ms)
    out = move_wharf_clock(w, advance_ms=ms)
    assert out["outboxDrained"], out
    return out


def set_both(sb, w, when_ms):
    """Sets both clocks to the same instant (forward only)."""
    status, body = move_sandbox_clock(sb, set_ms=when_ms)
    assert status == 200, body
    return move_wharf_clock(w, set_ms=when_ms)


def next_month_start(ms):
    d = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return int(datetime(y, m, 1, tzinfo=timezone.utc).timestamp() * 1000)


def wharf_cli(w, *args):
    """`wharf <args>` against the server's own store (admin commands)."""
    env = base_env()
    env.update({"INTEGRATION_CLIENT_ID": w.client_id,
                "INTEGRATION_CLIENT_SECRET": "unused-by-admin-commands",
                "WHARF_DATA_DIR": w.data_dir})
    if getattr(w, "state_url", None):
        env["WHARF_STATE_URL"] = w.state_url
    for name in ("WHARF_CATALOG", "WHARF_POSTGRES_URL", "WHARF_STATE_URL"):
        if name in w.extra_env:
            env[name] = str(w.extra_env[name])
    return subprocess.run([w.binary, *args], env=env, capture_output=True, text=True, timeout=60)


def billing_show(w, iid):
    r = wharf_cli(w, "billing", "show", "--installation", iid)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def outbox(w, state):
    r = wharf_cli(w, "outbox", "--state", state)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def sandbox_invoices(sb, iid):
    return sb.state().get("invoices", {}).get(iid, {})


def sandbox_billing_days(sb, iid):
    return sb.state().get("billing", {}).get(iid, [])


def set_invoice_state(sb, iid, invoice_id, state):
    r = requests.post(f"{sb.base}/_sandbox/invoices/{iid}/{invoice_id}/state",
                      json={"state": state}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def wait_until(pred, timeout=20.0, step=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def log_since(sb, after=0):
    """Every exchange-log entry after id `after` (paging through the 5000-entry limit)."""
    out = []
    while True:
        page = sb.log(after)
        out.extend(page)
        if len(page) < 5000:
            return out
        after = page[-1]["id"]


def last_log_id(sb):
    entries = log_since(sb)
    return entries[-1]["id"] if entries else 0


def calls(sb, after, needle):
    """Exchanges after id `after` whose URL contains `needle`, in arrival order."""
    return [e for e in log_since(sb, after) if needle in e.get("url", "")]
