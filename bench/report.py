#!/usr/bin/python3
"""Read the raw outputs of bench/run.sh (OUT dir) and print the comparison table.

usage: report.py OUT
"""
import json
import os
import re
import sys

out = sys.argv[1]
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}
RSS_TARGET_MIB = 64
RATIO_TARGET = 3.0


def read(name):
    p = os.path.join(out, name)
    return open(p).read() if os.path.exists(p) else None


def parse_wrk(text):
    if text is None:
        return None
    r = {}
    m = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    r["rps"] = float(m.group(1)) if m else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s%%\s+([0-9.]+)(us|ms|s|m)\s*$" % pct, text, re.M)
        r["p" + pct] = float(m.group(1)) * UNITS[m.group(2)] if m else None
    m = re.search(r"(\d+) requests in ([0-9.]+)(\w+)", text)
    r["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return r


def parse_openssl(text):
    """verify/s per core from `openssl speed rsa2048` (column named verify/s)."""
    if text is None:
        return None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "verify/s" in line:
            cols = line.split()
            idx = cols.index("verify/s")
            for row in lines[i + 1:]:
                if row.startswith("rsa 2048") or row.startswith("rsa  2048"):
                    vals = row.split()[3:]  # after "rsa 2048 bits"
                    return float(vals[idx])
    return None


def sample(name):
    t = read(name)
    return json.loads(t) if t else None


def fmt(x, unit="", nd=1):
    return "n/a" if x is None else f"{x:,.{nd}f}{unit}"


meta = json.loads(read("meta.json") or "{}")
runs = [
    ("node-baseline  GET …/resources/res_bench", "node", parse_wrk(read("wrk-node.txt")), sample("sample-node.json")),
    ("wharf          GET …/icfg_bench/plans", "wharf", parse_wrk(read("wrk-wharf-plans.txt")), sample("sample-wharf-plans.json")),
    ("wharf          GET …/icfg_bench", "wharf", parse_wrk(read("wrk-wharf-inst.txt")), sample("sample-wharf-inst.json")),
    ("wharf          GET …/resources/<id>", "wharf", parse_wrk(read("wrk-wharf-resource.txt")), sample("sample-wharf-resource.json")),
]
verify = parse_openssl(read("openssl.txt"))
cores = meta.get("cores") or os.cpu_count()

lines = []
P = lines.append
P(f"# Wharf fresh-token benchmark ({meta.get('date', '')})")
P("")
P(f"machine: {cores} cores; wrk {meta.get('wrk_args', '')}; loopback; tokens: node {meta.get('node_tokens')} "
  f"distinct user tokens, wharf {meta.get('wharf_tokens')} distinct system tokens")
P("")
P("| run | req/s | p50 | p99 | non-2xx | socket errs | CPU s | peak RSS (VmHWM) |")
P("|---|---:|---:|---:|---:|---:|---:|---:|")
for label, _kind, w, s in runs:
    if w is None:
        P(f"| {label} | (not run) | | | | | | |")
        continue
    hwm = s and (s["peak_hwm_kb"] / 1024.0)
    rss = s and (s["peak_rss_kb"] / 1024.0)
    mem = "n/a" if s is None else (f"{hwm:.1f} MiB" if _kind == "wharf" else f"{rss:.1f} MiB (sum of {s['processes']} procs)")
    P(f"| {label} | {fmt(w['rps'], '', 0)} | {fmt(w['p50'], ' ms', 2)} | {fmt(w['p99'], ' ms', 2)} | "
      f"{w['non2xx']} | {w['socket_errors']} | {fmt(s and s['cpu_seconds'], '', 1)} | {mem} |")
P("")

node = runs[0][2]
verdicts = []
P("| check | value | target | result |")
P("|---|---:|---:|---|")
query_run = ("wharf          POST /v1/databases/<id>/query", "wharf", parse_wrk(read("wrk-wharf-query.txt")),
             sample("sample-wharf-query.json"))
for label, _k, w, s in runs[1:] + [query_run]:
    name = label.split()[-1].replace("…/", "")
    if node and w and node["rps"] and w["rps"] and "query" not in label:
        ratio = w["rps"] / node["rps"]
        ok = ratio >= RATIO_TARGET
        verdicts.append(ok)
        P(f"| throughput wharf/node ({name}) | {ratio:.2f}× | ≥ {RATIO_TARGET:.0f}× | {'PASS' if ok else 'FAIL'} |")
    if node and w and node["p99"] is not None and w["p99"] is not None:
        ok = w["p99"] < node["p99"]
        verdicts.append(ok)
        P(f"| p99 wharf vs node ({name}) | {w['p99']:.2f} vs {node['p99']:.2f} ms | lower | {'PASS' if ok else 'FAIL'} |")
    if w and (w["non2xx"] or w["socket_errors"]):
        verdicts.append(False)
        P(f"| clean responses ({name}) | {w['non2xx']} non-2xx, {w['socket_errors']} socket errors | 0 | FAIL (run invalid) |")
hwms = [s["peak_hwm_kb"] / 1024.0 for _l, k, _w, s in runs if k == "wharf" and s]
if hwms:
    ok = max(hwms) < RSS_TARGET_MIB
    verdicts.append(ok)
    P(f"| wharf peak RSS (VmHWM) | {max(hwms):.1f} MiB | < {RSS_TARGET_MIB} MiB | {'PASS' if ok else 'FAIL'} |")
if node and (node["non2xx"] or node["socket_errors"]):
    P(f"| node clean responses | {node['non2xx']} non-2xx, {node['socket_errors']} socket errors | 0 | baseline invalid |")
P("")
if verify:
    ceiling = verify * cores
    P(f"openssl speed rsa2048: {verify:,.0f} verify/s per core → {ceiling:,.0f}/s for {cores} cores "
      f"(the ceiling of a fresh-token path that does nothing but verify).")
    for label, _k, w, s in runs:
        if not w or not w["rps"]:
            continue
        frac = w["rps"] / ceiling
        extra = ""
        if s and s["cpu_seconds"] and s["wall_seconds"]:
            cores_used = s["cpu_seconds"] / s["wall_seconds"]
            per_cpu = w["rps"] / cores_used if cores_used else 0
            extra = (f"; server used {cores_used:.2f} cores → {per_cpu:,.0f} req per CPU-second = "
                     f"{per_cpu / verify:.0%} of one core's verify rate")
        P(f"- {label.split()[0]} {label.split()[-1]}: {w['rps']:,.0f} req/s = {frac:.0%} of the {cores}-core verify ceiling{extra}")
    P("")
    P("wrk shares the same cores, so 100% of the ceiling is out of reach by construction; the "
      "per-CPU-second figure shows what the server itself spends per request.")
    # Issue 12's CPU floor: server CPU per request (utime and stime from /proc, separately)
    # against one RSA-2048 verify, and requests per server CPU-second against node's.
    verify_us = 1e6 / verify
    node_s = runs[0][3]
    node_per_cpu = (node["requests"] / node_s["cpu_seconds"]
                    if node and node_s and node.get("requests") and node_s.get("cpu_seconds") else None)
    P("")
    P(f"Server CPU per request (one RSA-2048 verify = {verify_us:.1f} µs in this run):")
    P("")
    P("| run | user µs/req | kernel µs/req | user ÷ verify | (user+kernel) ÷ verify | req per server CPU-s | ÷ node |")
    P("|---|---:|---:|---:|---:|---:|---:|")
    cpu_rows = []
    for label, k, w, s in runs:
        if not w or not w.get("requests") or not s or "user_seconds" not in s:
            continue
        n = w["requests"]
        u = s["user_seconds"] * 1e6 / n
        kern = s["kernel_seconds"] * 1e6 / n
        per_cpu = n / s["cpu_seconds"] if s["cpu_seconds"] else 0
        vs_node = f"{per_cpu / node_per_cpu:.2f}×" if node_per_cpu and k == "wharf" else ""
        P(f"| {label} | {u:.1f} | {kern:.1f} | {u / verify_us:.2f}× | {(u + kern) / verify_us:.2f}× | "
          f"{per_cpu:,.0f} | {vs_node} |")
        cpu_rows.append((label, k, u, kern, per_cpu))
    P("")
    P("| check (fresh-token Get Installation, issue 12) | value | target | result |")
    P("|---|---:|---:|---|")
    for label, k, u, kern, per_cpu in cpu_rows:
        if not label.endswith("icfg_bench"):
            continue
        ok = u / verify_us <= 1.5
        verdicts.append(ok)
        P(f"| server user CPU per request | {u / verify_us:.2f}× one verify | ≤ 1.5× | {'PASS' if ok else 'FAIL'} |")
        ok = (u + kern) / verify_us <= 2.5
        verdicts.append(ok)
        P(f"| server user+kernel CPU per request | {(u + kern) / verify_us:.2f}× one verify | ≤ 2.5× | "
          f"{'PASS' if ok else 'FAIL'} |")
        if node_per_cpu:
            ok = per_cpu >= 5 * node_per_cpu
            verdicts.append(ok)
            P(f"| requests per server CPU-second vs node | {per_cpu / node_per_cpu:.2f}× | ≥ 5× | "
              f"{'PASS' if ok else 'FAIL'} |")
prov = json.loads(read("provision.json") or "null")
query = parse_wrk(read("wrk-wharf-query.txt"))
if prov or query:
    P("")
    P("Resources (issue 4):")
    if prov:
        P(f"- provision latency over {prov['n']} provisions (each a real SQLite database, fsync'd): "
          f"p50 {prov['p50_ms']:.1f} ms, p99 {prov['p99_ms']:.1f} ms, max {prov['max_ms']:.1f} ms")
    if query:
        P(f"- data-plane point queries (one token, `select v from kv where k = ?`): "
          f"{query['rps']:,.0f} req/s, p50 {fmt(query['p50'], ' ms', 2)}, p99 {fmt(query['p99'], ' ms', 2)}, "
          f"{query['non2xx']} non-2xx")
P("")
P("overall: " + ("PASS" if verdicts and all(verdicts) else "FAIL" if verdicts else "incomplete"))
text = "\n".join(lines)
print(text)
with open(os.path.join(out, "report.md"), "w") as f:
    f.write(text + "\n")
