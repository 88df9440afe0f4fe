#!/usr/bin/python3
"""Wharf's state on SQLite, on PostgreSQL with one replica, and on PostgreSQL with two replicas,
side by side in one run (bench/README.md, "Replicas"; issue 13).

For each setup, fresh state and fresh processes:
  sqlite      one wharf, state in <data dir>/state.db (the embedded default)
  postgres-1  one wharf, WHARF_STATE_URL=postgres://… on a throwaway cluster (scripts/pg-temp.sh,
              durable: fsync and synchronous_commit on, as SQLite's synchronous=FULL)
  postgres-2  two wharfs on one database (the same URL, one encryption key); the load is split
              evenly: one wrk per replica, half the connections each

and in each setup two measured runs, each after WARMUP seconds of the same load:
  inst        Get Installation with a fresh system token per request (../shared/bench/tokens.lua):
              auth (a full RS256 verification) + a store read
  provision   Provision Resource with a fresh ADMIN user token per request (bench/provision.lua):
              a new `flags` resource each time (its data lives in the state store), so the
              run is auth + the store's write path

Figures: requests/s and p50/p99 from wrk (for two replicas: the sum of the two wrk runs and the
worse of their percentiles), non-2xx and socket errors (must be 0), and CPU from /proc: the
wharf processes' user and kernel seconds apart, and the PostgreSQL cluster's (its postmaster's
process tree, plus the reaped children's time). wrk shares the 2 cores, so the comparable
figures are requests per server CPU-second: per wharf CPU-second, and per (wharf + PostgreSQL)
CPU-second, which is what a PostgreSQL setup really spends. Ratios are against the SQLite run of
the same route in the same run. Nothing is asserted: it prints a table and writes
bench/out/replicas.json and bench/out/replicas.md.

Env: WHARF_BIN (build/wharf), SHARED_DIR (../shared), DURATION (10), WARMUP (3), CONNS (32,
Get Installation), PROVISION_CONNS (8), SYS_TOKENS (100000), USER_TOKENS (30000),
KEEP_TOKENS=1 (reuse bench/out/replicas/ tokens whatever their age), PG_DURABLE (1).
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from proc import TICK, cpu

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from lib.wharf import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR") or ROOT.parent / "shared").resolve()
WHARF = os.environ.get("WHARF_BIN") or str(ROOT / "build" / "wharf")
OUT = ROOT / "bench" / "out"
TOK = OUT / "replicas"
DURATION = int(os.environ.get("DURATION", "10"))
WARMUP = int(os.environ.get("WARMUP", "3"))
CONNS = int(os.environ.get("CONNS", "32"))
PROVISION_CONNS = int(os.environ.get("PROVISION_CONNS", "8"))
SYS_TOKENS = int(os.environ.get("SYS_TOKENS", "100000"))
USER_TOKENS = int(os.environ.get("USER_TOKENS", "30000"))
AUD, INST, ISSUER = "oac_bench", "icfg_bench", "https://marketplace.vercel.com"
PY = "/usr/bin/python3"
PG_TEMP = ROOT / "scripts" / "pg-temp.sh"
PSQL = shutil.which("psql") or "/usr/bin/psql"

# Only `flags`: a `sqlite` product is refused on a shared (PostgreSQL) state.
CATALOG = {
    "products": [{"id": "flags", "kind": "flags", "name": "Feature Flags",
                  "plans": ["flags-free"]}],
    "plans": [{"id": "flags-free", "type": "subscription", "name": "Flags Hobby",
               "description": "Free flags", "scope": "resource",
               "paymentMethodRequired": False, "cost": "Free",
               "pricing": {"baseFee": "0.00", "metrics": {}}, "limits": {"maxFlags": 50}}],
}

procs = []  # every process started: stopped at exit


def say(msg):
    print(f"\n== {msg}", file=sys.stderr, flush=True)


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    sys.exit(f"bench: {url} did not answer 200 in {timeout} s")


def tokens_fresh():
    files = [TOK / "tokens.txt", TOK / "user_tokens.txt", TOK / "jwks.json",
             TOK / "admin_token.txt"]
    if not all(f.exists() and f.stat().st_size for f in files):
        return False
    if os.environ.get("KEEP_TOKENS") == "1":
        return True
    young = all(time.time() - f.stat().st_mtime < 5 * 3600 for f in files)
    counts = (sum(1 for _ in open(files[0])), sum(1 for _ in open(files[1])))
    return young and counts == (SYS_TOKENS, USER_TOKENS)


def pg_cpu(postmaster):
    """(user s, kernel s) of a PostgreSQL cluster: its live process tree plus the time of the
    backends it has reaped (cutime/cstime of the postmaster)."""
    user, kernel = cpu(postmaster)
    with open(f"/proc/{postmaster}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return user + int(fields[13]) / TICK, kernel + int(fields[14]) / TICK


def parse_wrk(text):
    def ms(v, unit):
        return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
    out = {"requests": 0, "non2xx": 0, "socket_errors": 0, "p50_ms": None, "p99_ms": None}
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = sum(int(x) for x in m.groups())
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if m:
            out[f"p{p}_ms"] = ms(*m.groups())
    return out


def wrk(script, targets, conns, seconds, env_for, latency=True):
    """One wrk per (url, path), all at once; their outputs."""
    runs = []
    for i, (url, path) in enumerate(targets):
        env = dict(os.environ, TARGET_PATH=path, **env_for(i))
        args = ["wrk", "-t1", f"-c{max(1, conns // len(targets))}", f"-d{seconds}s", "-s",
                str(script)] + (["--latency"] if latency else []) + [url]
        runs.append(subprocess.Popen(args, cwd=SHARED / "bench", env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True))
    return [r.communicate()[0] for r in runs]


class Setup:
    def __init__(self, name, replicas, state_url, jwks_url, base):
        self.name, self.n, self.state_url = name, replicas, state_url
        self.pids, self.urls = [], []
        key = base64.b64encode(os.urandom(32)).decode()
        (base / "catalog.json").write_text(json.dumps(CATALOG))
        for i in range(replicas):
            port = free_port()
            data = base / f"{name}-{i}"
            data.mkdir()
            env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
            env.update({
                "INTEGRATION_CLIENT_ID": AUD, "INTEGRATION_CLIENT_SECRET": "bench-secret",
                "WHARF_LISTEN": f"127.0.0.1:{port}", "WHARF_DATA_DIR": str(data),
                "WHARF_OIDC_ISSUER": ISSUER, "WHARF_JWKS_URL": jwks_url,
                "WHARF_VERCEL_API_URL": "http://127.0.0.1:9", "WHARF_RECONCILE_S": "0",
                "WHARF_RATE_LIMIT_TOKEN": "off", "WHARF_RATE_LIMIT_INSTALLATION": "off",
                "WHARF_CATALOG": str(base / "catalog.json"), "WHARF_ENCRYPTION_KEY": key})
            if state_url:
                env["WHARF_STATE_URL"] = state_url
            log = open(OUT / f"replicas-{name}-{i}.log", "w")
            p = subprocess.Popen([WHARF, "serve"], env=env, stdout=log, stderr=log,
                                 start_new_session=True)
            procs.append(p)
            self.pids.append(p.pid)
            self.urls.append(f"http://127.0.0.1:{port}")
        for u in self.urls:
            wait_http(u + "/readyz")

    def upsert(self, admin):
        body = {"scopes": ["read:resource"], "acceptedPolicies": {"toc": "2024-02-28T10:00:00Z"},
                "credentials": {"access_token": "tok_bench", "token_type": "Bearer"},
                "account": {"url": "https://vercel.com/bench",
                            "contact": {"email": "bench@example.com"}}}
        req = urllib.request.Request(f"{self.urls[0]}/v1/installations/{INST}",
                                     data=json.dumps(body).encode(), method="PUT",
                                     headers={"Authorization": "Bearer " + admin,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200, r.status

    def cpu(self):
        u = k = 0.0
        for pid in self.pids:
            a, b = cpu(pid)
            u, k = u + a, k + b
        return u, k

    def stop(self):
        for p in procs:
            if p.pid in self.pids and p.poll() is None:
                p.terminate()
        for p in procs:
            if p.pid in self.pids:
                p.wait(timeout=30)


def measure(setup, route, postmaster, offset):
    if route == "inst":
        script, tokens, conns = SHARED / "bench" / "tokens.lua", TOK / "tokens.txt", CONNS
        path = f"/v1/installations/{INST}"
    else:
        script, tokens, conns = ROOT / "bench" / "provision.lua", TOK / "user_tokens.txt", \
            PROVISION_CONNS
        path = f"/v1/installations/{INST}/resources"
    targets = [(u, path) for u in setup.urls]

    def env_for(phase):
        # Each wrk starts at its own place in the token file and names its resources apart.
        return lambda i: {"TOKENS": str(tokens), "NAME_PREFIX": f"{setup.name}-{phase}-{i}",
                          "TOKEN_OFFSET": str(offset + i * (USER_TOKENS // 2))}
    say(f"{setup.name} {route}: warm-up {WARMUP} s")
    wrk(script, targets, conns, WARMUP, env_for("warm"), latency=False)
    say(f"{setup.name} {route}: {DURATION} s, {conns} connections over {setup.n} replica(s)")
    w0, p0 = setup.cpu(), pg_cpu(postmaster) if postmaster and setup.state_url else (0, 0)
    t0 = time.monotonic()
    texts = wrk(script, targets, conns, DURATION, env_for("run"))
    elapsed = time.monotonic() - t0
    w1, p1 = setup.cpu(), pg_cpu(postmaster) if postmaster and setup.state_url else (0, 0)
    for i, t in enumerate(texts):
        (OUT / f"wrk-replicas-{setup.name}-{route}-{i}.txt").write_text(t)
    parts = [parse_wrk(t) for t in texts]
    requests = sum(p["requests"] for p in parts)
    row = {"setup": setup.name, "replicas": setup.n, "route": route,
           "requests": requests, "req_s": requests / elapsed,
           "p50_ms": max(p["p50_ms"] or 0 for p in parts),
           "p99_ms": max(p["p99_ms"] or 0 for p in parts),
           "non2xx": sum(p["non2xx"] for p in parts),
           "socket_errors": sum(p["socket_errors"] for p in parts),
           "wharf_user_s": w1[0] - w0[0], "wharf_kernel_s": w1[1] - w0[1],
           "pg_user_s": p1[0] - p0[0], "pg_kernel_s": p1[1] - p0[1]}
    wharf_s = row["wharf_user_s"] + row["wharf_kernel_s"]
    all_s = wharf_s + row["pg_user_s"] + row["pg_kernel_s"]
    row["req_per_wharf_cpu_s"] = requests / wharf_s if wharf_s else 0
    row["req_per_server_cpu_s"] = requests / all_s if all_s else 0
    row["wharf_user_us_per_req"] = row["wharf_user_s"] * 1e6 / max(1, requests)
    row["wharf_kernel_us_per_req"] = row["wharf_kernel_s"] * 1e6 / max(1, requests)
    row["pg_us_per_req"] = (row["pg_user_s"] + row["pg_kernel_s"]) * 1e6 / max(1, requests)
    print(json.dumps(row), file=sys.stderr)
    return row


def report(rows):
    base = {r["route"]: r for r in rows if r["setup"] == "sqlite"}
    lines = ["# Wharf state: SQLite vs PostgreSQL, 1 and 2 replicas", "",
             f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores (wrk shares them), "
             f"{DURATION} s per run after {WARMUP} s of warm-up; Get Installation "
             f"{CONNS} connections, Provision {PROVISION_CONNS}. Fresh token on every request.",
             "",
             "| setup | route | req/s | p50 ms | p99 ms | non-2xx / sock err | wharf user µs/req "
             "| wharf kernel µs/req | PG µs/req | req per wharf CPU-s | req per (wharf+PG) CPU-s "
             "| vs SQLite (wharf CPU-s) | vs SQLite (all CPU-s) | vs SQLite (req/s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        b = base.get(r["route"])
        ratio = (lambda k: f"{r[k] / b[k]:.2f}×" if b and b[k] else "-")
        lines.append(
            f"| {r['setup']} | {r['route']} | {r['req_s']:.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['non2xx']} / {r['socket_errors']} | "
            f"{r['wharf_user_us_per_req']:.0f} | {r['wharf_kernel_us_per_req']:.0f} | "
            f"{r['pg_us_per_req']:.0f} | {r['req_per_wharf_cpu_s']:.0f} | "
            f"{r['req_per_server_cpu_s']:.0f} | {ratio('req_per_wharf_cpu_s')} | "
            f"{ratio('req_per_server_cpu_s')} | {ratio('req_s')} |")
    bad = [r for r in rows if r["non2xx"] or r["socket_errors"]]
    lines += ["", "Runs with errors (invalid figures): " +
              (", ".join(f"{r['setup']}/{r['route']}" for r in bad) if bad else "none")]
    text = "\n".join(lines) + "\n"
    (OUT / "replicas.md").write_text(text)
    (OUT / "replicas.json").write_text(json.dumps(rows, indent=1))
    print(text)


def main():
    for tool in ("wrk", PSQL):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (apt-get install wrk postgresql-client)")
    if not Path(WHARF).exists():
        sys.exit(f"bench: {WHARF} not built (make build)")
    OUT.mkdir(parents=True, exist_ok=True)
    if tokens_fresh():
        say(f"reusing tokens in {TOK}")
    else:
        say(f"minting {SYS_TOKENS} system and {USER_TOKENS} ADMIN user tokens")
        subprocess.run([PY, str(ROOT / "bench" / "mint_system_tokens.py"), str(TOK),
                        str(SYS_TOKENS), AUD, INST, "--user-tokens", str(USER_TOKENS)],
                       check=True, env=dict(os.environ, SHARED_DIR=str(SHARED)))
    admin = (TOK / "admin_token.txt").read_text().strip()

    base = Path(tempfile.mkdtemp(prefix="wharf-bench-replicas."))
    cluster = base / "cluster"
    jport = free_port()
    procs.append(subprocess.Popen([PY, str(ROOT / "bench" / "jwks_server.py"),
                                   str(TOK / "jwks.json"), str(jport)], start_new_session=True))
    jwks_url = f"http://127.0.0.1:{jport}/.well-known/jwks"
    rows = []
    try:
        say("starting a throwaway PostgreSQL (scripts/pg-temp.sh)")
        r = subprocess.run([str(PG_TEMP), "start", str(cluster)], capture_output=True, text=True,
                           env=dict(os.environ, PG_DURABLE=os.environ.get("PG_DURABLE", "1")))
        if r.returncode:
            sys.exit(f"bench: pg-temp.sh start failed: {r.stderr}")
        admin_url = r.stdout.strip()
        postmaster = int((cluster / "data" / "postmaster.pid").read_text().split()[0])
        offset = 0
        for name, n in (("sqlite", 1), ("postgres-1", 1), ("postgres-2", 2)):
            url = None
            if name != "sqlite":
                db = name.replace("-", "_")
                subprocess.run([PSQL, "-X", "-q", admin_url, "-c", f"CREATE DATABASE {db}"],
                               check=True)
                url = admin_url.rsplit("/", 1)[0] + "/" + db
            say(f"setup {name}: {n} wharf replica(s)")
            s = Setup(name, n, url, jwks_url, base)
            try:
                s.upsert(admin)
                rows.append(measure(s, "inst", postmaster, 0))
                rows.append(measure(s, "provision", postmaster, offset))
                offset += USER_TOKENS // 3
            finally:
                s.stop()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        subprocess.run([str(PG_TEMP), "stop", str(cluster)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    report(rows)


if __name__ == "__main__":
    main()
