"""Start, talk to and stop a real `wharf serve` process for the integration tests."""
import atexit
import itertools
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time

import requests

CLIENT_ID = "oac_test123"
CLIENT_SECRET = "test-client-secret-0123456789"
START_TIMEOUT = 30.0   # generous: the machine is small and may be loaded
HTTP_TIMEOUT = 30.0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env():
    """The parent environment minus anything that could configure wharf behind our back."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("WHARF_") or k.startswith("INTEGRATION_"))}
    return env


# WHARF_TEST_STATE=postgres runs every wharf of the session on a PostgreSQL state store
# (WHARF_STATE_URL=postgres://…): one throwaway cluster (scripts/pg-temp.sh) for the session,
# started on first use, and one database per Wharf instance (kept across its restarts).
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
_pg = {}
_pg_db_numbers = itertools.count(1)


def _pg_admin_url():
    if "url" not in _pg:
        base = tempfile.mkdtemp(prefix="wharf-state-pg-")  # /tmp: the server runs as postgres
        d = os.path.join(base, "cluster")
        script = os.path.join(REPO, "scripts", "pg-temp.sh")
        r = subprocess.run([script, "start", d], capture_output=True, text=True, timeout=120)
        if r.returncode == 3:
            raise RuntimeError("WHARF_TEST_STATE=postgres: PostgreSQL server binaries missing; "
                               "run scripts/install-deps.sh")
        if r.returncode != 0:
            raise RuntimeError(f"pg-temp.sh start failed: {r.stdout}{r.stderr}")

        def stop():
            subprocess.run([script, "stop", d], capture_output=True, timeout=120)
            shutil.rmtree(base, ignore_errors=True)

        atexit.register(stop)
        _pg["url"] = r.stdout.strip().splitlines()[-1]
    return _pg["url"]


def postgres_state_url():
    """A new empty database on the session's cluster, as a WHARF_STATE_URL."""
    admin = _pg_admin_url()
    name = f"wharf_state_{os.getpid()}_{next(_pg_db_numbers)}"
    psql = shutil.which("psql") or "/usr/bin/psql"
    r = subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", admin, "-c",
                        f"CREATE DATABASE {name}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return admin.rsplit("/", 1)[0] + "/" + name


class WharfExited(Exception):
    pass


class Wharf:
    """One wharf process with its own data dir and log files.

    env: overrides on top of the defaults; a value of None removes the variable."""

    def __init__(self, binary, workdir, jwks_url, issuer, env=None, client_id=CLIENT_ID):
        self.binary = binary
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.data_dir = os.path.join(self.workdir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.stderr_path = os.path.join(self.workdir, "wharf.stderr.log")
        self.stdout_path = os.path.join(self.workdir, "wharf.stdout.log")
        self.client_id = client_id
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.extra_env = dict(env or {})
        self.proc = None
        self.port = None
        self.starts = 0
        self.preexec = None  # run in the child before exec (e.g. resource limits)
        self.state_url = None  # WHARF_STATE_URL when the state is not the default SQLite file
        if (os.environ.get("WHARF_TEST_STATE") == "postgres"
                and "WHARF_STATE_URL" not in self.extra_env):
            self.state_url = postgres_state_url()

    # -- process ---------------------------------------------------------------------------
    def build_env(self):
        self.port = free_port()
        env = base_env()
        env.update({
            "INTEGRATION_CLIENT_ID": self.client_id,
            "INTEGRATION_CLIENT_SECRET": CLIENT_SECRET,
            "WHARF_LISTEN": f"127.0.0.1:{self.port}",
            "WHARF_DATA_DIR": self.data_dir,
            "WHARF_OIDC_ISSUER": self.issuer,
            "WHARF_JWKS_URL": self.jwks_url,
            # Nothing may leave loopback: point the Vercel API at a closed local port.
            "WHARF_VERCEL_API_URL": "http://127.0.0.1:9",
        })
        if self.state_url:
            env["WHARF_STATE_URL"] = self.state_url
            # One process per database here: the sqlite products the tests sell are allowed.
            env["WHARF_SINGLE_REPLICA"] = "1"
        for k, v in self.extra_env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        if "WHARF_LISTEN" in self.extra_env and self.extra_env["WHARF_LISTEN"]:
            m = re.search(r":(\d+)$", str(self.extra_env["WHARF_LISTEN"]))
            self.port = int(m.group(1)) if m else None
        return env

    def spawn(self):
        env = self.build_env()
        self.starts += 1
        # Append, so a restart keeps the earlier run's log in the same file.
        err = open(self.stderr_path, "ab")
        out = open(self.stdout_path, "ab")
        try:
            self.proc = subprocess.Popen([self.binary, "serve"], env=env, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir,
                                         start_new_session=True, preexec_fn=self.preexec)
        finally:
            err.close()
            out.close()
        return self.proc

    def start(self, wait_ready=True, timeout=START_TIMEOUT):
        for attempt in range(3):
            self.spawn()
            if not wait_ready:
                return self
            try:
                self.wait_ready(timeout)
                return self
            except WharfExited:
                # A lost race for the port is the only reason worth a retry.
                if attempt < 2 and "in use" in self.stderr_tail().lower():
                    continue
                raise
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=START_TIMEOUT, path="/readyz"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise WharfExited(f"wharf exited with status {self.proc.returncode} before ready; "
                                  f"stderr:\n{self.stderr_tail()}")
            try:
                r = requests.get(self.url(path), timeout=5)
                last = r.status_code
                if r.status_code == 200:
                    return
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        raise AssertionError(f"wharf not ready after {timeout}s (last {path}: {last}); stderr:\n"
                             f"{self.stderr_tail()}")

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL if it has not exited within `timeout`. Returns the status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    # -- HTTP ------------------------------------------------------------------------------
    # -- the state store, read directly ---------------------------------------------------
    def state_rows(self, sql, params=()):
        """Rows of a query (`?` placeholders) on this wharf's state: its SQLite file, or its
        PostgreSQL database under WHARF_TEST_STATE=postgres (integers come back as int)."""
        if not self.state_url:
            con = sqlite3.connect(f"file:{os.path.join(self.data_dir, 'state.db')}?mode=ro",
                                  uri=True)
            try:
                return con.execute(sql, params).fetchall()
            finally:
                con.close()
        parts = sql.split("?")
        assert len(parts) == len(params) + 1, sql
        text = parts[0]
        for value, rest in zip(params, parts[1:]):
            text += (str(value) if isinstance(value, int)
                     else "'" + str(value).replace("'", "''") + "'") + rest
        psql = shutil.which("psql") or "/usr/bin/psql"
        r = subprocess.run([psql, "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                            self.state_url, "-c", text],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return [tuple(int(v) if re.fullmatch(r"-?\d+", v) else v for v in line.split("\t"))
                for line in r.stdout.splitlines()]

    def state_dump(self):
        """The whole PostgreSQL state as pg_dump writes it, in a file beside the data dir
        (None when the state is the SQLite file in the data dir)."""
        if not self.state_url:
            return None
        path = os.path.join(self.workdir, "state.pgdump.sql")
        pg_dump = shutil.which("pg_dump") or "/usr/bin/pg_dump"
        with open(path, "wb") as f:
            subprocess.run([pg_dump, self.state_url], stdout=f, check=True, timeout=60)
        return path

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, method, path, token=None, *, headers=None, json_body=None, data=None,
                auth_mode=None, idem=None, timeout=HTTP_TIMEOUT, **kw):
        h = {}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if auth_mode is not None:
            h["X-Vercel-Auth"] = auth_mode
        if idem is not None:
            h["Idempotency-Key"] = idem
        if json_body is not None:
            data = json.dumps(json_body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        return requests.request(method, self.url(path), headers=h, data=data, timeout=timeout, **kw)

    def get(self, path, token=None, **kw):
        return self.request("GET", path, token, **kw)

    def metrics(self):
        r = requests.get(self.url("/metrics"), timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, r.text
        return r.text

    # -- logs ------------------------------------------------------------------------------
    def log_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_lines(self):
        return [l for l in self.log_text().splitlines() if l.strip()]

    def log_records(self):
        out = []
        for line in self.log_lines():
            try:
                rec = json.loads(line)
            except ValueError:
                rec = {"_raw": line}
            out.append(rec if isinstance(rec, dict) else {"_raw": line})
        return out

    def request_logs(self):
        return [r for r in self.log_records() if r.get("msg") == "request"]

    def wait_for_log(self, pred, timeout=15.0):
        """The request log line may be written just after the response; poll for it."""
        deadline = time.monotonic() + timeout
        while True:
            for rec in self.log_records():
                if pred(rec):
                    return rec
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def stderr_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])


# -- raw sockets ---------------------------------------------------------------------------
def read_http_response(sock, timeout=HTTP_TIMEOUT):
    """Read one HTTP/1.1 response (Content-Length or close-delimited; chunked decoded).
    Returns (status, headers-dict-lowercase, body bytes, leftover bytes) or None on EOF."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            if not buf:
                return None
            raise ConnectionError(f"connection closed inside headers: {buf[:200]!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest[:n], rest[n:]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                return status, headers, body, rest
    # close-delimited
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        rest += chunk
    return status, headers, rest, b""


def connect(port, timeout=HTTP_TIMEOUT):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send_all_ignoring_reset(sock, data, chunk=65536):
    """Send `data`; the server may legitimately answer early and close (e.g. 413)."""
    try:
        for i in range(0, len(data), chunk):
            sock.sendall(data[i:i + chunk])
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def wait_closed(sock, timeout):
    """Wait until the peer closes the connection (EOF or reset). Returns the bytes received
    before the close, or raises AssertionError if still open after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    got = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return got
        if not chunk:
            return got
        got += chunk
    raise AssertionError(f"connection still open after {timeout}s (received {got[:200]!r})")
