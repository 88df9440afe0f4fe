"""Start, drive and stop a real `wharf-sandbox serve` process (the local Vercel)."""
import json
import os
import signal
import subprocess
import time

import requests

from .wharf import free_port, base_env, HTTP_TIMEOUT, START_TIMEOUT, Wharf

SANDBOX_CLIENT_ID = "oac_sandboxTest0000000000000"
SANDBOX_CLIENT_SECRET = "sandbox-client-secret-0123456789"


class Sandbox:
    def __init__(self, binary, workdir, partner_url, env=None):
        self.binary = binary
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.data_dir = os.path.join(self.workdir, "sandbox-data")
        self.stderr_path = os.path.join(self.workdir, "sandbox.stderr.log")
        self.partner_url = partner_url
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.proc = None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def env(self):
        env = base_env()
        env.update({
            "INTEGRATION_CLIENT_ID": SANDBOX_CLIENT_ID,
            "INTEGRATION_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
            "SANDBOX_LISTEN": f"127.0.0.1:{self.port}",
            "SANDBOX_DATA_DIR": self.data_dir,
            "SANDBOX_PARTNER_URL": self.partner_url,
        })
        env.update({k: str(v) for k, v in self.extra_env.items()})
        return env

    def start(self):
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen([self.binary, "serve"], env=self.env(), stdout=err,
                                         stderr=err, stdin=subprocess.DEVNULL, cwd=self.workdir,
                                         start_new_session=True)
        finally:
            err.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"wharf-sandbox exited: {self.tail()}")
            try:
                if requests.get(self.base + "/_sandbox/config", timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError(f"wharf-sandbox not ready: {self.tail()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode if self.proc else None

    def tail(self, n=40):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except FileNotFoundError:
            return ""

    # -- control API -------------------------------------------------------------------------
    def flow(self, _flow, **params):
        r = requests.post(f"{self.base}/_sandbox/flows/{_flow}", json=params, timeout=HTTP_TIMEOUT)
        assert r.headers.get("content-type", "").startswith("application/json"), r.text
        return r.status_code, r.json()

    def run(self, _flow, **params):
        """A flow that must have been performed (HTTP 200 from the control API)."""
        status, body = self.flow(_flow, **params)
        assert status == 200, (_flow, status, body)
        return body

    def install(self):
        """A new installation, installed through the install flow; returns its id."""
        from .api import new_installation_id
        iid = new_installation_id()
        assert self.run("install", installationId=iid)["ok"]
        return iid

    def state(self):
        return requests.get(self.base + "/_sandbox/state", timeout=HTTP_TIMEOUT).json()

    def log(self, after=0):
        r = requests.get(f"{self.base}/_sandbox/log?after={after}&limit=5000", timeout=HTTP_TIMEOUT)
        return r.json()["exchanges"]

    def exchange(self, ex_id):
        for e in self.log():
            if e["id"] == ex_id:
                return e
        raise AssertionError(f"no exchange {ex_id}")

    def access_token(self, installation_id):
        return self.state()["installations"][installation_id]["accessTokens"][0]

    def vercel(self, method, path, token=None, json_body=None, data=None, headers=None):
        """Call the sandbox's Vercel API as a partner would."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data = json.dumps(json_body)
            h.setdefault("Content-Type", "application/json")
        return requests.request(method, self.base + path, data=data, headers=h, timeout=HTTP_TIMEOUT)

    def cli(self, *args):
        env = base_env()
        env["SANDBOX_URL"] = self.base
        return subprocess.run([self.binary, *args], env=env, capture_output=True, text=True,
                              timeout=60)


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def sandbox_bin():
    return os.environ.get("SANDBOX_BIN") or os.path.join(REPO, "build", "wharf-sandbox")


def start_pair(tmp, wharf_bin, catalog=None, wharf_env=None, sandbox_env=None, wharf_port=None):
    """A sandbox whose partner is a wharf whose Vercel is that sandbox. `wharf_env` and
    `sandbox_env` add settings; "{wharf}" / "{sandbox}" in their values become the base URLs.
    `wharf_port`: a port reserved earlier (a peer that calls wharf needs its URL first)."""
    wport = wharf_port or free_port()
    wharf_base = f"http://127.0.0.1:{wport}"
    sb = Sandbox(sandbox_bin(), tmp / "sandbox", wharf_base,
                 env={k: v.replace("{wharf}", wharf_base) for k, v in (sandbox_env or {}).items()})
    sb.start()
    env = {"WHARF_LISTEN": f"127.0.0.1:{wport}", "INTEGRATION_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
           "WHARF_VERCEL_API_URL": sb.base}
    env.update({k: v.replace("{sandbox}", sb.base) for k, v in (wharf_env or {}).items()})
    if catalog:
        path = tmp / "catalog.json"
        path.write_text(json.dumps(catalog))
        env["WHARF_CATALOG"] = str(path)
    w = Wharf(wharf_bin, tmp / "wharf", f"{sb.base}/.well-known/jwks", sb.base, env=env,
              client_id=SANDBOX_CLIENT_ID).start()
    return sb, w


# -- clock and fault injection (POST/GET /_sandbox/clock, /_sandbox/faults) -------------------
def sandbox_clock(sb):
    """The sandbox's clock: {"nowMs", "now" (ISO-8601 ms Z), "offsetMs"}."""
    r = requests.get(sb.base + "/_sandbox/clock", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def move_sandbox_clock(sb, advance_ms=None, set_ms=None, set_iso=None):
    """Moves the sandbox clock forward by exactly one of advance_ms / set_ms / set_iso.
    Returns (status, body) so callers can also check refusals (400 going backwards)."""
    body = {}
    if advance_ms is not None:
        body["advanceMs"] = advance_ms
    if set_ms is not None:
        body["setMs"] = set_ms
    if set_iso is not None:
        body["set"] = set_iso
    r = requests.post(sb.base + "/_sandbox/clock", json=body, timeout=HTTP_TIMEOUT)
    return r.status_code, r.json()


def advance_sandbox_clock(sb, ms):
    """Moves the sandbox clock forward by `ms`; returns the clock as sandbox_clock does."""
    status, body = move_sandbox_clock(sb, advance_ms=ms)
    assert status == 200, body
    return body


def add_faults(sb, *rules):
    """Adds fault rules for the sandbox's Vercel API (/v1/..., /v2/...), e.g.
    add_faults(sb, {"status": 503, "method": "POST", "pathContains": "/billing", "count": 2}).
    Returns the ids of the added rules."""
    r = requests.post(sb.base + "/_sandbox/faults", json={"rules": list(rules)},
                      timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()["added"]


def list_faults(sb):
    """Every fault rule with its `remaining` (None: unlimited), `hits` and `active`."""
    r = requests.get(sb.base + "/_sandbox/faults", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()["rules"]


def clear_faults(sb):
    """Removes every fault rule; returns how many there were."""
    r = requests.delete(sb.base + "/_sandbox/faults", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()["cleared"]


def faulted_exchanges(sb, after=0):
    """Exchange-log entries of calls a fault rule took (each has a `fault` object:
    injected, rule, mode, status?, delayMs?, handledStatus?); `at` is the arrival time in
    epoch ms on the sandbox clock."""
    return [e for e in sb.log(after) if "fault" in e]
