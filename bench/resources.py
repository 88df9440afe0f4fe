#!/usr/bin/python3
"""Resource benchmarks against a running wharf: provisions the resource the Get Resource
wrk run targets, measures provision latency (p50/p99 over N provisions, each creating a
real SQLite database), and prepares the data-plane point-query run.

usage: resources.py BASE_URL INSTALLATION ADMIN_TOKEN_FILE OUT_DIR N_PROVISIONS
writes OUT_DIR/resource.json {"resourceId", "url", "token"} and OUT_DIR/provision.json"""
import json
import sys
import time
import urllib.request

base, inst, token_file, out, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
admin = open(token_file).read().strip()


def call(method, url, body, token):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 method=method, headers={"Authorization": "Bearer " + token,
                                                         "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def provision(name):
    return call("POST", f"{base}/v1/installations/{inst}/resources",
                {"productId": "sqlite-db", "name": name, "metadata": {"durability": "full"},
                 "billingPlanId": "sqlite-free"}, admin)


lat = []
for i in range(n):
    t0 = time.perf_counter()
    provision(f"bench-{i}")
    lat.append((time.perf_counter() - t0) * 1000)
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]
json.dump({"n": n, "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": lat[-1]},
          open(f"{out}/provision.json", "w"))

res = provision("bench-target")
secrets = {s["name"]: s["value"] for s in res["secrets"]}
call("POST", secrets["DATABASE_URL"] + "/query",
     {"statements": [{"sql": "create table kv(k integer primary key, v text)"},
                     {"sql": "with recursive c(x) as (select 1 union all select x+1 from c limit 1000) "
                             "insert into kv select x, 'value-' || x from c"}]},
     secrets["DATABASE_TOKEN"])
json.dump({"resourceId": res["id"], "url": secrets["DATABASE_URL"], "token": secrets["DATABASE_TOKEN"]},
          open(f"{out}/resource.json", "w"))
print(res["id"])
