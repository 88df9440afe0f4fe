"""Start, drive and stop the example product backend (examples/backend/server.py, "Acme KV")
as a real subprocess, for tests of `http` catalog products (product protocol v1)."""
import hashlib
import hmac
import json
import os
import select
import signal
import subprocess
import sys
import time

import requests

from .wharf import base_env, HTTP_TIMEOUT, START_TIMEOUT

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SERVER = os.path.join(REPO, "examples", "backend", "server.py")
SECRET_ENV = "ACME_BACKEND_SECRET"
SECRET = "acme-backend-test-secret-0123456789abcdef"   # >= 32 bytes
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def sign(secret, body_bytes, t=None):
    """The Wharf-Signature header value for `body_bytes` (product protocol §2)."""
    key = secret.encode() if isinstance(secret, str) else secret
    t = int(time.time()) if t is None else int(t)
    mac = hmac.new(key, f"{t}.".encode() + body_bytes, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class ExampleBackend:
    """One server.py process with --test-control and a state file under tmp_path.

    url: the catalog's backend url (http://127.0.0.1:<port>/wharf/v1); base: the server root."""

    def __init__(self, tmp_path, wharf_url, product_id="acme-kv", secret=SECRET,
                 async_provision=False, async_delay_ms=500, usage_interval_s=3600, start=True):
        self.workdir = str(tmp_path)
        os.makedirs(self.workdir, exist_ok=True)
        self.state_path = os.path.join(self.workdir, f"backend-{product_id}.state.json")
        self.stderr_path = os.path.join(self.workdir, f"backend-{product_id}.stderr.log")
        self.wharf_url = wharf_url
        self.product_id = product_id
        self.secret = secret
        self.async_provision = async_provision
        self.async_delay_ms = async_delay_ms
        self.usage_interval_s = usage_interval_s
        self.port = 0
        self.proc = None
        if start:
            self.start()

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self):
        return self.base + "/wharf/v1"

    def env(self):
        env = base_env()
        env[SECRET_ENV] = self.secret
        return env

    # -- process -----------------------------------------------------------------------
    def start(self):
        args = [PYTHON, SERVER, "--port", str(self.port), "--wharf-url", self.wharf_url,
                "--product-id", self.product_id, "--secret-env", SECRET_ENV,
                "--state", self.state_path, "--usage-interval-s", str(self.usage_interval_s),
                "--async-delay-ms", str(self.async_delay_ms), "--test-control"]
        if self.port:
            args += ["--public-url", self.base]
        if self.async_provision:
            args.append("--async-provision")
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen(args, env=self.env(), stdout=subprocess.PIPE, stderr=err,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir,
                                         start_new_session=True)
        finally:
            err.close()
        deadline = time.monotonic() + START_TIMEOUT
        line = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith(b"listening on "):
                    self.port = int(line.split()[-1])
                    return self
            if self.proc.poll() is not None:
                raise AssertionError(f"example backend exited ({self.proc.returncode}): {self.tail()}")
        self.stop()
        raise AssertionError(f"example backend not ready (last line {line!r}): {self.tail()}")

    def stop(self):
        """Terminate (SIGTERM); returns the exit status."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode if self.proc else None

    def kill(self):
        """SIGKILL: the backend dies without a goodbye (state is saved on every change)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self):
        """Stop and start again on the same port with the same state file."""
        self.stop()
        for attempt in range(20):   # the old socket may linger a moment
            try:
                return self.start()
            except AssertionError:
                if attempt == 19 or "in use" not in self.tail().lower():
                    raise
                time.sleep(0.25)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n=40):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except FileNotFoundError:
            return ""

    # -- control API -------------------------------------------------------------------
    def _control(self, method, path, body=None):
        r = requests.request(method, self.base + "/_control/" + path, json=body, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, f"{method} /_control/{path}: {r.status_code} {r.text}"
        return r.json()

    def faults(self, op, status, count=1, delay_ms=0, body=None):
        """The next `count` calls of `op` (PUT, PATCH, DELETE, rotate, repl, transfer) wait
        delay_ms, then answer `status`/`body` instead of doing the work (status 0: do it)."""
        f = {"op": op, "status": status, "count": count, "delayMs": delay_ms}
        if body is not None:
            f["body"] = body
        return self._control("POST", "faults", f)

    def clear_faults(self):
        return self._control("DELETE", "faults")

    def calls(self, op=None):
        """Every Wharf -> backend call received: {method, path, op, idempotencyKey, requestId,
        body, signatureValid, status, time}; only `op`'s when given."""
        calls = self._control("GET", "calls")
        return [c for c in calls if op is None or c["op"] == op]

    def outgoing(self):
        """Every backend -> Wharf call made (W1, W2): {method, url, body, status, answer, time}."""
        return self._control("GET", "outgoing")

    def flush_usage(self):
        """Sends pending usage now: {answers: [{status, body}, ...], pending: n}."""
        return self._control("POST", "flush-usage")

    def state(self):
        return self._control("GET", "resources")

    def resources(self):
        """{resourceId: {id, installationId, name, metadata, plan, status, suspended, tokens,
        data, ...}} as stored."""
        return self.state()["resources"]

    def wait_for(self, pred, timeout=15.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    # -- as the backend: signed calls to Wharf (W1-W3) and to the KV API --------------------
    def send_to_wharf(self, path, body, secret=None, t=None, raw=None):
        """POST {wharf}/v1/backend/{product}/{path} signed like the backend does (W1-W3)."""
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json",
                   "Wharf-Signature": sign(secret or self.secret, data, t)}
        return requests.post(f"{self.wharf_url.rstrip('/')}/v1/backend/{self.product_id}/{path}",
                             data=data, headers=headers, timeout=HTTP_TIMEOUT)

    def call(self, method, path, body=None, secret=None, t=None, headers=None):
        """A signed Wharf -> backend call made by the test itself (path relative to .url)."""
        data = b"" if body is None else json.dumps(body).encode()
        h = {"Content-Type": "application/json",
             "Wharf-Signature": sign(secret or self.secret, data, t)}
        h.update(headers or {})
        return requests.request(method, self.url + path, data=data, headers=h, timeout=HTTP_TIMEOUT)

    def kv(self, method, secrets, key, value=None):
        """Uses a resource's secrets ([{name, value}]) the way a Vercel deployment would."""
        s = {x["name"]: x["value"] for x in secrets}
        return requests.request(method, f"{s['KV_REST_API_URL']}/{key}", data=value,
                                headers={"Authorization": f"Bearer {s['KV_REST_API_TOKEN']}"},
                                timeout=HTTP_TIMEOUT)
