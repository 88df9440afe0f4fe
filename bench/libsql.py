#!/usr/bin/python3
"""Point selects through libSQL's remote protocol against Wharf's own query API, same run,
same server, same database (bench/README.md, "libSQL protocol").

A wharf-sandbox and a wharf (tests/integration/lib) are started, one sqlite-db resource is
provisioned and filled with 1,000 rows, then each lane runs for DURATION seconds:

  query     wrk, POST $DATABASE_URL/query            {"sql": "select v from kv where k = ?"}
  pipeline  wrk, POST …/v2/pipeline                  [execute, close] (what client.execute sends)
  client    @libsql/client from tests/clients, CONNS concurrent client.execute() calls

For each lane: requests/s, p50/p99 (wrk's, or the client's own), and the server's CPU per
request from /proc/<pid>/stat, user and kernel time apart (the load generator shares the
cores, so CPU per request is the comparable figure). Prints a table and writes
bench/out/libsql.json.

Env: WHARF_BIN, SANDBOX_BIN (default build/), DURATION (10), CONNS (16).
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
os.environ.setdefault("WHARF_BIN", str(ROOT / "build" / "wharf"))
os.environ.setdefault("SANDBOX_BIN", str(ROOT / "build" / "wharf-sandbox"))

import requests  # noqa: E402

from lib import api  # noqa: E402
from lib.sandbox import start_pair  # noqa: E402

DURATION = int(os.environ.get("DURATION", "10"))
CONNS = int(os.environ.get("CONNS", "16"))
TICK = os.sysconf("SC_CLK_TCK")
OUT = ROOT / "bench" / "out"

PIPELINE_LUA = r'''
local token = os.getenv("DB_TOKEN")
local i = 0
request = function()
  i = i % 1000 + 1
  local body = '{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"select v from kv where k = ?",' ..
               '"args":[{"type":"integer","value":"' .. i .. '"}]}},{"type":"close"}]}'
  return wrk.format("POST", nil, { ["Authorization"] = "Bearer " .. token,
                                   ["Content-Type"] = "application/json" }, body)
end
'''

CLIENT_JS = r'''
import { createClient } from "@libsql/client";
const [url, authToken, seconds, conns] = [process.env.DATABASE_URL, process.env.DATABASE_TOKEN,
                                          Number(process.argv[2]), Number(process.argv[3])];
const db = createClient({ url, authToken, concurrency: conns });
const lat = [];
let errors = 0;
const end = Date.now() + seconds * 1000;
async function worker(w) {
  let i = w;
  while (Date.now() < end) {
    i = (i % 1000) + 1;
    const t = process.hrtime.bigint();
    try {
      const r = await db.execute({ sql: "select v from kv where k = ?", args: [i] });
      if (r.rows.length !== 1) errors++;
    } catch (e) { errors++; }
    lat.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
}
const started = Date.now();
await Promise.all(Array.from({ length: conns }, (_, w) => worker(w)));
const elapsed = (Date.now() - started) / 1000;
lat.sort((a, b) => a - b);
const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
console.log(JSON.stringify({ requests: lat.length, errors, seconds: elapsed,
                             p50_ms: q(0.5), p99_ms: q(0.99) }));
db.close();
'''


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def wrk(url, script, env):
    out = subprocess.run(["wrk", "-t1", f"-c{CONNS}", f"-d{DURATION}s", "-s", script, "--latency",
                          url], capture_output=True, text=True, env=env, check=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    return {"requests": reqs, "errors": errors, "seconds": DURATION, "p50_ms": pct(50),
            "p99_ms": pct(99)}


def lane(name, pid, run):
    u0, s0 = cpu(pid)
    r = run()
    u1, s1 = cpu(pid)
    n = max(r["requests"], 1)
    r.update(name=name, rps=r["requests"] / r["seconds"], user_us=(u1 - u0) / n * 1e6,
             kernel_us=(s1 - s0) / n * 1e6)
    r["cpu_us"] = r["user_us"] + r["kernel_us"]
    print(f"{name:9} {r['rps']:9.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
          f"server CPU/request {r['cpu_us']:6.1f} us (user {r['user_us']:.1f}, kernel "
          f"{r['kernel_us']:.1f})  errors {r['errors']}", flush=True)
    return r


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="wharf-libsql-bench."))
    sb, w = start_pair(tmp, os.environ["WHARF_BIN"],
                       wharf_env={"WHARF_RATE_LIMIT_TOKEN": "off",
                                  "WHARF_RATE_LIMIT_INSTALLATION": "off",
                                  "WHARF_LOG_LEVEL": "warn"})
    try:
        iid = api.new_installation_id()
        assert sb.run("install", installationId=iid)["ok"]
        res = sb.run("provision", installationId=iid, productId="sqlite-db", name="bench",
                     metadata={"durability": "normal"}, billingPlanId="sqlite-pro")
        assert res["ok"], res
        secrets = {s["name"]: s["value"] for s in res["response"]["secrets"]}
        url, token = secrets["DATABASE_URL"], secrets["DATABASE_TOKEN"]
        r = requests.post(url + "/query", timeout=30, headers={"Authorization": f"Bearer {token}"},
                          json={"statements": [
                              {"sql": "create table kv(k integer primary key, v text)"},
                              {"sql": "insert into kv with recursive c(x) as (select 1 union all "
                                      "select x + 1 from c where x < 1000) select x, 'value-' || x "
                                      "from c"}]})
        assert r.status_code == 200, r.text
        pid = w.proc.pid
        env = dict(os.environ, DB_TOKEN=token)
        query_lua = str(ROOT / "bench" / "query.lua")
        pipe_lua = tmp / "pipeline.lua"
        pipe_lua.write_text(PIPELINE_LUA)
        base = url.rsplit("/", 1)[0]
        results = []
        results.append(lane("query", pid, lambda: wrk(
            f"http://{url.split('/')[2]}", query_lua,
            dict(env, TARGET_PATH="/" + url.split("/", 3)[3] + "/query"))))
        results.append(lane("pipeline", pid, lambda: wrk(base + "/v2/pipeline", str(pipe_lua), env)))
        client_js = ROOT / "tests" / "clients" / "bench-client.mjs"
        client_js.write_text(CLIENT_JS)
        try:
            def client():
                out = subprocess.run(["node", str(client_js), str(DURATION), str(CONNS)],
                                     cwd=ROOT / "tests" / "clients", env=dict(os.environ, **secrets),
                                     capture_output=True, text=True, check=True).stdout
                return json.loads(out.strip().splitlines()[-1])
            results.append(lane("client", pid, client))
        finally:
            client_js.unlink()
        q = results[0]["cpu_us"]
        for r in results[1:]:
            print(f"{r['name']}: {r['cpu_us'] / q:.2f}x the query API's server CPU per request")
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "duration_s": DURATION,
                   "conns": CONNS, "lanes": results}, open(OUT / "libsql.json", "w"), indent=2)
        assert all(r["errors"] == 0 for r in results), "errors in a lane"
    finally:
        w.stop()
        sb.stop()


if __name__ == "__main__":
    main()
