#!/usr/bin/python3
"""Product kinds side by side (bench/README.md, "Product kinds"): provision latency of each
kind, and usage ingest through the product protocol's W2 callback.

Started: a throwaway PostgreSQL (scripts/pg-temp.sh), the example backend
(examples/backend/server.py, a real process), a wharf-sandbox and a wharf selling sqlite-db,
acme-kv (http) and postgres-db.

  provision   PROVISIONS sequential provisions per kind through the sandbox; the latency is
              the Partner API call as the sandbox (Vercel) timed it, p50/p99/max.
  ingest      W2 batches of 1,000 signed usage events from THREADS client threads for
              DURATION seconds, every event new (accepted), then the same batches again
              (all duplicates); events/s accepted and the server's CPU per 1,000 events,
              user and kernel apart (/proc/<pid>/stat). Target: >= 20,000 events/s.

Prints a table with PASS/FAIL for the ingest target and writes bench/out/products.json.
Env: WHARF_BIN, SANDBOX_BIN (default build/), PROVISIONS (50), DURATION (10), THREADS (4).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
os.environ.setdefault("WHARF_BIN", str(ROOT / "build" / "wharf"))
os.environ.setdefault("SANDBOX_BIN", str(ROOT / "build" / "wharf-sandbox"))

import requests  # noqa: E402

from lib import api  # noqa: E402
from lib.backend_example import ExampleBackend, sign  # noqa: E402
from lib.sandbox import start_pair  # noqa: E402
from lib.wharf import free_port  # noqa: E402

PROVISIONS = int(os.environ.get("PROVISIONS", "50"))
DURATION = float(os.environ.get("DURATION", "10"))
THREADS = int(os.environ.get("THREADS", "4"))
TICK = os.sysconf("SC_CLK_TCK")
OUT = ROOT / "bench" / "out"
SECRET = "bench-backend-shared-secret-0123456789abcdef"
INGEST_TARGET = 20000


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK  # utime, stime


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def catalog(backend_url):
    free = {"type": "subscription", "scope": "resource", "paymentMethodRequired": False,
            "cost": "Free", "description": "Free"}
    return {
        "products": [
            {"id": "sqlite-db", "kind": "sqlite", "name": "SQLite", "plans": ["sqlite-free"]},
            {"id": "acme-kv", "kind": "http", "name": "Acme KV", "plans": ["kv-free"],
             "backend": {"url": backend_url, "secretEnv": "ACME_BACKEND_SECRET"}},
            {"id": "postgres-db", "kind": "postgres", "name": "Postgres", "plans": ["pg-free"]},
        ],
        "plans": [dict(free, id="sqlite-free", name="Hobby"), dict(free, id="kv-free", name="KV"),
                  dict(free, id="pg-free", name="PG", limits={"statementTimeoutMs": 5000})],
    }


def provision_latencies(sb, iid, product, plan):
    ids, ok = [], 0
    for i in range(PROVISIONS):
        status, res = sb.flow("provision", installationId=iid, productId=product,
                              name=f"b{i}", metadata={}, billingPlanId=plan)
        if res.get("ok") and res["response"].get("status") == "ready":
            ok += 1
        ids.append(res["exchanges"][0])
    by_id = {e["id"]: e for e in sb.log()}
    ms = [by_id[i]["durationMs"] for i in ids if i in by_id]
    return {"kind_ready": ok, "n": len(ms), "p50_ms": round(pct(ms, 50), 2),
            "p99_ms": round(pct(ms, 99), 2), "max_ms": round(max(ms), 2)}


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ingest(w, pid, rids, batches_per_thread):
    url = w.url("/v1/backend/acme-kv/usage")
    # Bodies are made before the clock starts: the client's JSON is not what is measured.
    plans = []
    for t in range(THREADS):
        mine = []
        for b in range(batches_per_thread):
            events = [{"id": str(uuid.uuid4()), "resourceId": rids[(b + k) % len(rids)],
                       "metric": "requests", "value": 1, "type": "interval",
                       "timestamp": now_iso()} for k in range(1000)]
            mine.append(json.dumps({"events": events}).encode())
        plans.append(mine)

    def run(bodies, deadline, counts, idx):
        s = requests.Session()
        accepted = dup = sent = 0
        for body in bodies:
            if time.monotonic() > deadline:
                break
            r = s.post(url, data=body, timeout=60,
                       headers={"Content-Type": "application/json",
                                "Wharf-Signature": sign(SECRET, body)})
            assert r.status_code == 200, r.text
            j = r.json()
            accepted += j["accepted"]
            dup += j["duplicates"]
            sent += 1
        counts[idx] = (accepted, dup, sent)

    results = {}
    for phase in ("new", "retried"):
        counts = [None] * THREADS
        u0, s0 = cpu(pid)
        t0 = time.monotonic()
        deadline = t0 + DURATION
        threads = [threading.Thread(target=run, args=(plans[t], deadline, counts, t))
                   for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.monotonic() - t0
        u1, s1 = cpu(pid)
        accepted = sum(c[0] for c in counts)
        dup = sum(c[1] for c in counts)
        events = accepted + dup
        results[phase] = {
            "events": events, "accepted": accepted, "duplicates": dup, "seconds": round(wall, 2),
            "events_per_s": round(events / wall),
            "server_user_ms_per_1000": round((u1 - u0) * 1e6 / max(events, 1), 2),
            "server_kernel_ms_per_1000": round((s1 - s0) * 1e6 / max(events, 1), 2),
        }
        # The retried phase sends exactly the batches the first phase got through.
        for t in range(THREADS):
            plans[t] = plans[t][:counts[t][2]]
    return results


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="wharf-bench-products-"))
    pg_dir = tmp / "pg"
    started = subprocess.run([str(ROOT / "scripts" / "pg-temp.sh"), "start", str(pg_dir)],
                             capture_output=True, text=True)
    if started.returncode != 0:
        sys.exit(f"bench: PostgreSQL did not start: {started.stderr}")
    pg_url = started.stdout.strip()
    wport = free_port()
    backend = ExampleBackend(tmp / "backend", f"http://127.0.0.1:{wport}", secret=SECRET,
                             usage_interval_s=3600)
    sb = w = None
    try:
        sb, w = start_pair(tmp / "pair", os.environ["WHARF_BIN"], catalog=catalog(backend.url),
                           wharf_env={"ACME_BACKEND_SECRET": SECRET, "WHARF_POSTGRES_URL": pg_url,
                                      "WHARF_LOG_LEVEL": "warn"},
                           wharf_port=wport)
        iid = api.new_installation_id()
        assert sb.run("install", installationId=iid)["ok"]
        report = {"provision": {}, "machine": os.uname().nodename}
        for product, plan, kind in (("sqlite-db", "sqlite-free", "sqlite"),
                                    ("acme-kv", "kv-free", "http"),
                                    ("postgres-db", "pg-free", "postgres")):
            report["provision"][kind] = provision_latencies(sb, iid, product, plan)
        rids = [r["id"] for r in sb.flow("list-resources", installationId=iid)[1]["response"]["resources"]
                if r["productId"] == "acme-kv"]
        batches = int(DURATION * 40 / THREADS) + 10  # more than a run can send
        report["ingest"] = ingest(w, w.proc.pid, rids, batches)
    finally:
        if w:
            w.stop()
        if sb:
            sb.stop()
        backend.stop()
        subprocess.run([str(ROOT / "scripts" / "pg-temp.sh"), "stop", str(pg_dir)])
        shutil.rmtree(tmp, ignore_errors=True)

    print("\nProvision latency (Partner API, timed by the sandbox), sequential")
    print(f"{'kind':10} {'n':>4} {'ready':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, r in report["provision"].items():
        print(f"{kind:10} {r['n']:>4} {r['kind_ready']:>6} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}")
    print(f"\nUsage ingest (W2, batches of 1,000, {THREADS} client threads, {DURATION:g} s each)")
    print(f"{'phase':8} {'events':>8} {'events/s':>9} {'user ms/1k':>11} {'kernel ms/1k':>13}")
    for phase, r in report["ingest"].items():
        print(f"{phase:8} {r['events']:>8} {r['events_per_s']:>9} {r['server_user_ms_per_1000']:>11} "
              f"{r['server_kernel_ms_per_1000']:>13}")
    rate = report["ingest"]["new"]["events_per_s"]
    verdict = "PASS" if rate >= INGEST_TARGET else "FAIL"
    report["ingest_target"] = {"events_per_s": INGEST_TARGET, "result": verdict}
    print(f"\n{verdict}: usage ingest {rate} events/s accepted (target >= {INGEST_TARGET})")
    (OUT / "products.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
