#!/usr/bin/python3
"""Bulk OFREP evaluation of 50 flags per request against the node baseline's fresh-token route,
same run, same machine, loopback (bench/README.md, "Feature flags").

One run:

  1. build/wharf and build/wharf-sandbox are copied into a private temp dir (waiting, polling
     every 30 s, while a build has not produced them yet) and those copies are run.
  2. node      the node baseline (../shared/bench/node-baseline, WORKERS=2) on its fresh-token
               route GET /v1/installations/icfg_bench/resources/res_bench, every request with
               a token it has not seen (../shared/bench/tokens.lua, tokens from the shared
               mint_tokens.py, reused while fresh as bench/run.sh does), then stopped.
  3. A wharf-sandbox and a wharf (tests/integration/lib start_pair, abuse limits off) sell
     `flags`; one flag set is provisioned on flags-pro and 50 flags are created in one
     request (boolean, string, number and object flags; rules with equals, in, semver_gte, gt,
     matches, starts_with; percentage rollouts).
     bulk      POST $FLAGS_URL/ofrep/v1/evaluate/flags, a new targetingKey (and context) on
               every request, no If-None-Match: 200 with 50 results each.
     bulk-304  the same route with one context and its ETag in If-None-Match: 304, nothing
               evaluated (what a polling OFREP provider sends while nothing changed).

Every lane: WARMUP seconds of wrk, then DURATION seconds measured with
`wrk -t1 -cCONNS --latency`. wrk shares the cores with the server, so the comparable figure is
per server CPU-second: utime and stime of the server's process tree (node: the primary and its
cluster workers) from /proc/<pid>/stat before and after the measured run, reported apart.
Prints a table (figures and ratios, nothing asserted about timings) and writes
bench/out/flags.json.

Env: WHARF_BIN, SANDBOX_BIN (default build/), SHARED_DIR (default ../shared), DURATION (10),
WARMUP (10: with 3 s, node's lane ran anywhere from 4k to 9.7k requests/s on a quiet machine;
after 10 s it settles), CONNS (16), NODE_TOKENS (150000), KEEP_TOKENS=1 (never re-mint),
SKIP_NODE=1.
"""
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import requests  # noqa: E402

from lib import api  # noqa: E402
from lib.sandbox import start_pair  # noqa: E402
from proc import cpu  # noqa: E402  (bench/proc.py: a server's CPU, user and kernel apart)

DURATION = int(os.environ.get("DURATION", "10").rstrip("s"))
WARMUP = int(os.environ.get("WARMUP", "10").rstrip("s"))
CONNS = int(os.environ.get("CONNS", "16"))
NODE_TOKENS = int(os.environ.get("NODE_TOKENS", "150000"))
SHARED = Path(os.environ.get("SHARED_DIR") or ROOT.parent / "shared").resolve()
TICK = os.sysconf("SC_CLK_TCK")
OUT = ROOT / "bench" / "out"
PY = "/usr/bin/python3"
AUD, INST = "oac_bench", "icfg_bench"  # the node baseline's audience and installation (run.sh)
NFLAGS = 50

# ---------------------------------------------------------------- the flag set and contexts
COUNTRIES = ["NL", "DE", "US", "FR", "GB", "BE", "BR", "JP", "IN", "CA", "ES", "SE", "AU"]
VERSIONS = ["1.9.3", "2.0.0", "2.3.1", "2.4.0-beta.2", "3.0.0", "3.1.4", "1.2.0"]
PLANS = ["hobby", "pro", "enterprise"]
DOMAINS = ["acme.com", "globex.com", "example.org", "initech.io", "gmail.com"]


def context(n):
    """The evaluation context of request n; the Lua script below builds the same one."""
    return {"targetingKey": f"user-{n}", "country": COUNTRIES[n % len(COUNTRIES)],
            "appVersion": VERSIONS[n % len(VERSIONS)], "plan": PLANS[n % len(PLANS)],
            "email": f"user-{n}@{DOMAINS[n % len(DOMAINS)]}", "seats": n % 250}


# Rule conditions, used in turn by the flags (one to three rules each).
CONDITIONS = [
    [{"attribute": "country", "operator": "in", "values": ["NL", "DE", "BE", "FR"]}],
    [{"attribute": "plan", "operator": "equals", "value": "enterprise"}],
    [{"attribute": "appVersion", "operator": "semver_gte", "value": "2.3.0"}],
    [{"attribute": "seats", "operator": "gt", "value": 50}],
    [{"attribute": "email", "operator": "matches", "value": r"^user-[0-9]*7@(acme|globex)\.com$"}],
    [{"attribute": "targetingKey", "operator": "starts_with", "value": "user-1"}],
    [{"attribute": "plan", "operator": "in", "values": ["pro", "enterprise"]},
     {"attribute": "appVersion", "operator": "semver_gte", "value": "2.0.0"}],
    [{"attribute": "country", "operator": "equals", "value": "US"},
     {"attribute": "seats", "operator": "gt", "value": 100}],
    [{"attribute": "email", "operator": "starts_with", "value": "user-4"},
     {"attribute": "country", "operator": "in", "values": ["JP", "IN", "AU", "BR"]}],
]

VARIANTS = {
    "boolean": {"on": True, "off": False},
    "string": {"control": "Start your free trial", "treatment": "Try it free for 30 days",
               "holdout": "Sign up"},
    "number": {"low": 10, "medium": 100, "high": 1000},
    "object": {"v1": {"layout": "grid", "columns": 3, "cta": {"color": "blue"}},
               "v2": {"layout": "list", "columns": 1, "cta": {"color": "green"}},
               "off": {}},
}
DEFAULT = {"boolean": "off", "string": "control", "number": "low", "object": "off"}
PREFIX = {"boolean": "release", "string": "copy", "number": "limit", "object": "config"}


def flag(i):
    t = ["boolean", "string", "number", "object"][i % 4]
    names = list(VARIANTS[t])
    default = DEFAULT[t]
    others = [v for v in names if v != default]
    rules = []
    for j in range(i % 3 + 1):  # 1, 2 or 3 rules
        rule = {"conditions": CONDITIONS[(i + 2 * j) % len(CONDITIONS)]}
        if (i + j) % 5 == 4:  # some rules serve a percentage rollout
            rule["rollout"] = {"variants": [{"variant": others[0], "weight": 25},
                                            {"variant": default, "weight": 75}]}
        else:
            rule["variant"] = others[j % len(others)]
        rules.append(rule)
    f = {"key": f"{PREFIX[t]}-{i:02d}", "type": t, "name": f"{PREFIX[t].title()} {i}",
         "description": "bench/flags.py", "variants": VARIANTS[t], "defaultVariant": default,
         "rules": rules}
    if i % 3 == 0:  # a fallthrough rollout: 10 % get the new variant
        f["rollout"] = {"variants": [{"variant": others[0], "weight": 10},
                                     {"variant": default, "weight": 90}]}
    if i % 10 == 9:  # a few flags are plain switches, served as is
        f.pop("rollout", None)
        f["rules"] = []
    return f


BULK_LUA = r'''
local countries = {%(countries)s}
local versions = {%(versions)s}
local plans = {%(plans)s}
local domains = {%(domains)s}
local path = os.getenv("TARGET_PATH")
local headers = { ["Authorization"] = "Bearer " .. os.getenv("SDK_KEY"),
                  ["Content-Type"] = "application/json" }
local n = tonumber(os.getenv("START") or "0")
request = function()
  n = n + 1
  local body = string.format(
    '{"context":{"targetingKey":"user-%%d","country":"%%s","appVersion":"%%s","plan":"%%s",' ..
    '"email":"user-%%d@%%s","seats":%%d}}',
    n, countries[n %% #countries + 1], versions[n %% #versions + 1], plans[n %% #plans + 1],
    n, domains[n %% #domains + 1], n %% 250)
  return wrk.format("POST", path, headers, body)
end
''' % {k: ", ".join(f'"{x}"' for x in v) for k, v in
       {"countries": COUNTRIES, "versions": VERSIONS, "plans": PLANS, "domains": DOMAINS}.items()}

# One context, sent with the ETag of its last answer: every request is a 304.
NOT_MODIFIED_LUA = r'''
wrk.method = "POST"
wrk.path = os.getenv("TARGET_PATH")
wrk.body = os.getenv("BODY")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SDK_KEY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["If-None-Match"] = os.getenv("ETAG")
'''


# ---------------------------------------------------------------- processes and measurement
def say(msg):
    print(f"\n== {msg}", file=sys.stderr, flush=True)


def machine_busy_s():
    """(process time, interrupt time) the whole machine has spent, every core, from /proc/stat.
    Interrupt time (irq + softirq) is charged to no process: on loopback it is mostly the
    network stack's receive path, on behalf of both the server and wrk."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(x) for x in f.readline().split()[1:9])
    return (user + nice + system + steal) / TICK, (irq + softirq) / TICK


def wrk(base, script, env, seconds, cwd=None):
    out = subprocess.run(["wrk", "-t1", f"-c{CONNS}", f"-d{seconds}s", "-s", script, "--latency",
                          base], capture_output=True, text=True, env=env, cwd=cwd,
                         check=True).stdout
    reqs = int(re.search(r"(\d+) requests in ([\d.]+)(m?s)", out).group(1))
    m = re.search(r"requests in ([\d.]+)(ms|s|m)", out)
    secs = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    xfer = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", out)
    bps = float(xfer.group(1)) * {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[
        xfer.group(2)] if xfer else 0

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    return {"requests": reqs, "errors": errors, "seconds": secs, "p50_ms": pct(50),
            "p99_ms": pct(99), "bytes_per_request": bps * secs / max(reqs, 1), "wrk_output": out}


def lane(name, pid, base, script, env, cwd=None):
    say(f"{name}: warm-up {WARMUP} s, then wrk -t1 -c{CONNS} -d{DURATION}s --latency")
    wrk(base, script, dict(env, START="0"), WARMUP, cwd)
    u0, k0 = cpu(pid)
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m0, t0 = machine_busy_s(), time.monotonic()
    r = wrk(base, script, dict(env, START="100000000"), DURATION, cwd)
    m1, wall = machine_busy_s(), time.monotonic() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    u1, k1 = cpu(pid)
    n = max(r["requests"], 1)
    server_s = (u1 - u0) + (k1 - k0)
    r.update(name=name, rps=r["requests"] / r["seconds"], server_user_s=u1 - u0,
             server_kernel_s=k1 - k0, user_us=(u1 - u0) / n * 1e6, kernel_us=(k1 - k0) / n * 1e6,
             wrk_cpu_s=(c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime))
    r["cpu_us"] = r["user_us"] + r["kernel_us"]
    r["req_per_cpu_s"] = r["requests"] / server_s if server_s > 0 else None
    # Cores busy over the whole window, wrk's start-up included (tokens.lua reads its token
    # file first). "other" is everything else that ran on the machine meanwhile (other work,
    # the idle sandbox, …): a lane with a large share there was measured on a busy machine.
    r["window_s"] = wall
    r["server_cores"] = server_s / wall
    r["wrk_cores"] = r["wrk_cpu_s"] / wall
    r["other_cores"] = max(0.0, (m1[0] - m0[0]) - server_s - r["wrk_cpu_s"]) / wall
    r["softirq_cores"] = (m1[1] - m0[1]) / wall
    r["softirq_us"] = (m1[1] - m0[1]) / n * 1e6
    (OUT / f"wrk-flags-{name}.txt").write_text(r.pop("wrk_output"))
    print(f"{name:9} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
          f"server {r['cpu_us']:6.1f} us/req (user {r['user_us']:.1f}, kernel "
          f"{r['kernel_us']:.1f}); cores busy: server {r['server_cores']:.2f}, wrk "
          f"{r['wrk_cores']:.2f}, irq/softirq {r['softirq_cores']:.2f}, other "
          f"{r['other_cores']:.2f}; errors {r['errors']}",
          file=sys.stderr, flush=True)
    return r


def stop_group(proc):
    """SIGTERM (then SIGKILL) the process group this script started for `proc`."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        except ProcessLookupError:
            pass


def wait_status(url, want, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == want:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer {want} within {timeout} s")


# ---------------------------------------------------------------- binaries
def copy_binaries(tmp):
    """Copies of the built binaries (the build dir may be rebuilt while this runs), waiting,
    polling every 30 s, until both exist and `wharf --help` runs."""
    src = {"wharf": Path(os.environ.get("WHARF_BIN") or ROOT / "build" / "wharf"),
           "wharf-sandbox": Path(os.environ.get("SANDBOX_BIN") or ROOT / "build" / "wharf-sandbox")}
    while True:
        if all(p.is_file() for p in src.values()):
            (tmp / "bin").mkdir(exist_ok=True)
            dst = {k: tmp / "bin" / k for k in src}
            for k in src:
                shutil.copy2(src[k], dst[k])
            try:
                ok = subprocess.run([str(dst["wharf"]), "--help"], capture_output=True,
                                    timeout=30).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
            if ok:
                return dst, {k: time.strftime("%Y-%m-%d %H:%M:%S",
                                              time.localtime(src[k].stat().st_mtime)) for k in src}
        say("waiting for build/wharf and build/wharf-sandbox (polling every 30 s)")
        time.sleep(30)


# ---------------------------------------------------------------- node baseline (as run.sh)
def fresh(path, max_age_min, lines):
    """run.sh's fresh(): a token file is reused while young enough and complete."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    if os.environ.get("KEEP_TOKENS") == "1":
        return True
    if time.time() - path.stat().st_mtime > max_age_min * 60:
        return False
    with open(path, "rb") as f:
        return sum(1 for _ in f) == lines


def node_lane():
    """The node baseline's fresh-token lane, or (None, why it could not run)."""
    for tool in ("node", "npm", "wrk"):
        if not shutil.which(tool):
            return None, f"{tool} not found"
    lua = SHARED / "bench" / "tokens.lua"
    for p in (lua, SHARED / "bench" / "mint_tokens.py", SHARED / "bench" / "node-baseline"):
        if not p.exists():
            return None, f"{p} not found (set SHARED_DIR to the shared/ folder)"
    tokens = OUT / "node" / "tokens.txt"
    if fresh(tokens, 40, NODE_TOKENS):
        say(f"reusing {tokens}")
    else:
        say(f"minting {NODE_TOKENS} user tokens for node (shared mint_tokens.py)")
        r = subprocess.run([PY, str(SHARED / "bench" / "mint_tokens.py"), str(OUT / "node"),
                            str(NODE_TOKENS), AUD, INST], capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"mint_tokens.py failed: {r.stderr.strip()[-300:]}"
    node_dir = OUT / "node-baseline"
    node_dir.mkdir(parents=True, exist_ok=True)
    for f in ("package.json", "server.mjs"):
        shutil.copy(SHARED / "bench" / "node-baseline" / f, node_dir / f)
    if not (node_dir / "node_modules" / "jose").is_dir():
        say("npm install (node-baseline)")
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=node_dir, capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"npm install of the node baseline failed: {r.stderr.strip()[-300:]}"
    from lib.wharf import free_port
    port = free_port()
    say(f"starting node-baseline (WORKERS=2) on :{port}")
    with open(OUT / "node-flags.log", "wb") as log:
        proc = subprocess.Popen(["node", "server.mjs"], cwd=node_dir, stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env=dict(os.environ, JWKS_FILE=str(OUT / "node" / "jwks.json"),
                                         INTEGRATION_CLIENT_ID=AUD, PORT=str(port), WORKERS="2"))
    try:
        wait_status(f"http://127.0.0.1:{port}/", 403, 30)  # 403 without a token once it listens
        time.sleep(1)  # let every cluster worker come up
        env = dict(os.environ, TOKENS=str(tokens),
                   TARGET_PATH=f"/v1/installations/{INST}/resources/res_bench")
        r = lane("node", proc.pid, f"http://127.0.0.1:{port}", "tokens.lua", env,
                 cwd=SHARED / "bench")
        r["route"] = f"GET /v1/installations/{INST}/resources/res_bench, fresh RS256 user token"
        return r, None
    except (RuntimeError, subprocess.CalledProcessError) as e:
        return None, f"node baseline did not run: {e}"
    finally:
        stop_group(proc)


# ---------------------------------------------------------------- wharf
def flags_lanes(tmp, bins):
    os.environ["SANDBOX_BIN"] = str(bins["wharf-sandbox"])
    sb, w = start_pair(tmp, str(bins["wharf"]),
                       wharf_env={"WHARF_RATE_LIMIT_TOKEN": "off",
                                  "WHARF_RATE_LIMIT_INSTALLATION": "off",
                                  "WHARF_LOG_LEVEL": "warn"})
    try:
        iid = api.new_installation_id()
        assert sb.run("install", installationId=iid)["ok"]
        res = sb.run("provision", installationId=iid, productId="flags", name="bench",
                     metadata={}, billingPlanId="flags-pro")
        assert res["ok"], res
        secrets = {s["name"]: s["value"] for s in res["response"]["secrets"]}
        url, admin, sdk = secrets["FLAGS_URL"], secrets["FLAGS_ADMIN_KEY"], secrets["FLAGS_SDK_KEY"]
        flags = [flag(i) for i in range(NFLAGS)]
        r = requests.post(url + "/flags", json={"flags": flags}, timeout=30,
                          headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 201, r.text
        # Let the outbox mirror the new flags to the sandbox before anything is measured.
        deadline = time.time() + 30
        while time.time() < deadline:
            m = re.search(r"^wharf_outbox_pending (\d+)", requests.get(w.url("/metrics"),
                                                                      timeout=10).text, re.M)
            if m and m.group(1) == "0":
                break
            time.sleep(0.2)

        host = "http://" + url.split("/")[2]
        path = "/" + url.split("/", 3)[3] + "/ofrep/v1/evaluate/flags"
        auth = {"Authorization": f"Bearer {sdk}"}
        # Check what the lane will get: 50 results, none an error, rules and rollouts exercised.
        reasons, variants = {}, {}
        for n in range(1, 401):
            a = requests.post(host + path, json={"context": context(n)}, headers=auth, timeout=30)
            assert a.status_code == 200, (a.status_code, a.text)
            got = a.json()["flags"]
            assert len(got) == NFLAGS, f"{len(got)} flags in the bulk answer, {NFLAGS} expected"
            for f in got:
                assert "errorCode" not in f, f
                reasons[f["reason"]] = reasons.get(f["reason"], 0) + 1
                variants.setdefault(f["key"], set()).add(f["variant"])
        bytes_200 = len(a.content)
        say(f"bulk answer: {NFLAGS} flags, {bytes_200} bytes; reasons over 400 contexts: "
            f"{reasons}; flags serving more than one variant: "
            f"{sum(len(v) > 1 for v in variants.values())}/{NFLAGS}")
        body = json.dumps({"context": context(1)}, separators=(",", ":"))
        a = requests.post(host + path, data=body, timeout=30,
                          headers=dict(auth, **{"Content-Type": "application/json"}))
        etag = a.headers["ETag"]
        b = requests.post(host + path, data=body, timeout=30,
                          headers=dict(auth, **{"Content-Type": "application/json",
                                                "If-None-Match": etag}))
        assert b.status_code == 304, (b.status_code, b.text)

        pid = w.proc.pid
        env = dict(os.environ, SDK_KEY=sdk, TARGET_PATH=path)
        bulk_lua, nm_lua = tmp / "ofrep-bulk.lua", tmp / "ofrep-304.lua"
        bulk_lua.write_text(BULK_LUA)
        nm_lua.write_text(NOT_MODIFIED_LUA)
        results = [lane("bulk", pid, host, str(bulk_lua), env),
                   lane("bulk-304", pid, host, str(nm_lua), dict(env, BODY=body, ETAG=etag))]
        results[0]["route"] = ("POST …/ofrep/v1/evaluate/flags, new context each request: "
                               "200, 50 flags")
        results[1]["route"] = "POST …/ofrep/v1/evaluate/flags, If-None-Match: 304"
        for r in results:
            r["flags_per_request"] = NFLAGS if r["name"] == "bulk" else 0
        check = {"reasons_over_400_contexts": reasons, "bulk_answer_bytes": bytes_200,
                 "flags_with_several_variants": sum(len(v) > 1 for v in variants.values())}
        return results, check, flags
    finally:
        w.stop()
        sb.stop()


# ---------------------------------------------------------------- report
def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def table(results, node):
    head = ("| lane | req/s | p50 ms | p99 ms | server user µs/req | server kernel µs/req | "
            "req per server CPU-s | req/s vs node | p99 vs node | per CPU-s vs node | "
            "cores busy: server / wrk / softirq / other |")
    rows = [head, "|" + "---|" * 11]
    for r in results:
        def ratio(k, fmt="{:.2f}×"):
            if not node or r is node or not node.get(k) or r.get(k) is None:
                return "—" if r is node else "n/a"
            return fmt.format(r[k] / node[k])
        rows.append(f"| {r['name']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                    f"{r['user_us']:.1f} | {r['kernel_us']:.1f} | "
                    f"{r['req_per_cpu_s']:,.0f} | {ratio('rps')} | {ratio('p99_ms')} | "
                    f"{ratio('req_per_cpu_s')} | {r['server_cores']:.2f} / {r['wrk_cores']:.2f} / "
                    f"{r['softirq_cores']:.2f} / {r['other_cores']:.2f} |")
    return "\n".join(rows)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="wharf-flags-bench."))
    try:
        bins, built = copy_binaries(tmp)
        load_start = open("/proc/loadavg").read().split()[:3]
        if os.environ.get("SKIP_NODE") == "1":
            node, why = None, "SKIP_NODE=1"
        else:
            node, why = node_lane()
        if why:
            say(f"NO NODE BASELINE: {why}")
        results, check, flags = flags_lanes(tmp, bins)
        lanes = ([node] if node else []) + results
        print()
        print(table(lanes, node))
        if node:
            b = results[0]
            print(f"\nbulk (50 flags evaluated per request) vs node's fresh-token route: "
                  f"{b['rps'] / node['rps']:.2f}× the requests/s, p99 {b['p99_ms']:.2f} vs "
                  f"{node['p99_ms']:.2f} ms, {b['req_per_cpu_s'] / node['req_per_cpu_s']:.2f}× "
                  f"the requests per server CPU-second; "
                  f"{b['cpu_us'] / NFLAGS:.2f} µs of server CPU per flag evaluated")
        else:
            print(f"\nno ratio vs node: the node baseline did not run ({why})")
        b, nm = results
        extra_u, extra_k = b["user_us"] - nm["user_us"], b["kernel_us"] - nm["kernel_us"]
        print(f"the 200 path's extra server CPU over the 304 path (evaluating {NFLAGS} flags, "
              f"building and sending the answer, counting the evaluations): "
              f"{extra_u + extra_k:.1f} µs/request (user {extra_u:.1f}, kernel {extra_k:.1f}), "
              f"{(extra_u + extra_k) / NFLAGS:.2f} µs per flag")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": git("rev-parse", "--short",
                                                                            "HEAD"),
                   "uncommitted_changes": dirty, "binaries_built": built,
                   "cores": os.cpu_count(), "loadavg_at_start": load_start,
                   "duration_s": DURATION, "warmup_s": WARMUP,
                   "conns": CONNS, "node_tokens": NODE_TOKENS if node else 0,
                   "node_baseline": "ran" if node else f"not run: {why}",
                   "flags": NFLAGS, "check": check, "lanes": lanes, "flag_set": flags},
                  open(OUT / "flags.json", "w"), indent=2)
        print(f"\nwrote {OUT / 'flags.json'}")
        bad = [r["name"] for r in lanes if r["errors"]]
        if bad:
            print(f"INVALID: errors in {', '.join(bad)} (those lanes measured error paths)")
            sys.exit(1)
    finally:
        reap(tmp / "bin")
        shutil.rmtree(tmp, ignore_errors=True)


def reap(bindir):
    """Stops any process still running one of this run's binary copies (a start that failed
    half way, e.g. start_pair raising after its sandbox came up)."""
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and os.readlink(f"/proc/{d}/exe").startswith(str(bindir) + "/"):
                os.kill(int(d), signal.SIGKILL)
        except OSError:
            pass


if __name__ == "__main__":
    main()
