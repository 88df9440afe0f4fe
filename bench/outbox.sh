#!/usr/bin/env bash
# Outbox delivery benchmark. See bench/README.md ("Outbox delivery"). Raw outputs land in
# bench/out/outbox-*.
#
# MODE=sandbox (default): the Outbox worker draining ITEMS Submit Billing Data calls into a
#   real `wharf-sandbox serve`, against the sandbox's raw capacity for the same requests
#   measured with wrk at concurrency 1 in the same run.
# MODE=standin: the Outbox worker draining ITEMS calls (billing data and events, all distinct)
#   into `wharf-bench-outbox standin`, a minimal fast Vercel in its own process that checks
#   each bearer and records per installation what it accepted: items/s against the
#   >= 1,000 items/s target, the order per installation against the enqueue order, and the
#   CPU of both processes.
#
# Knobs (env): MODE (sandbox), INSTALLATIONS (10; standin 100), RESOURCES (10), ITEMS (20000),
#   DURATION (10s, each wrk run; standin 5s), BUILD_DIR (build); standin only:
#   CONCURRENCY (8, the outbox's senders), KEEPALIVE (1; 0: a new connection per call),
#   STANDIN_THREADS (1), TIMEOUT (600 s), TARGET (1000), DELIVER_BIN (the deliver step's binary,
#   for comparing builds; default the one built here).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build}"
OUT="$ROOT/bench/out"
PY=/usr/bin/python3
MODE="${MODE:-sandbox}"
if [ "$MODE" = standin ]; then K="${INSTALLATIONS:-100}"; else K="${INSTALLATIONS:-10}"; fi
M="${RESOURCES:-10}"
N="${ITEMS:-20000}"
if [ "$MODE" = standin ]; then DURATION="${DURATION:-5s}"; else DURATION="${DURATION:-10s}"; fi

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

case "$MODE" in sandbox | standin) ;; *) die "MODE is sandbox or standin, not $MODE" ;; esac
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
[ -f "$BUILD/CMakeCache.txt" ] || die "$BUILD not configured (make build)"
mkdir -p "$OUT"
rm -f "$OUT"/outbox-*

SBPID=""
cleanup() {
  if [ -n "$SBPID" ]; then
    kill -TERM -- "-$SBPID" 2>/dev/null || kill -TERM "$SBPID" 2>/dev/null || true
    wait "$SBPID" 2>/dev/null || true
  fi
  [ -n "${TMPD:-}" ] && rm -rf "$TMPD"
}
trap cleanup EXIT
TMPD="$(mktemp -d /tmp/wharf-bench-outbox.XXXXXX)"

if [ "$MODE" = standin ]; then
  C="${CONCURRENCY:-8}"
  say "building wharf-bench-outbox"
  cmake --build "$BUILD" -j"$(nproc)" --target wharf-bench-outbox >&2

  say "prepare: $K installations x $M resources, $N outbox items (billing data and events)"
  "$BUILD/wharf-bench-outbox" prepare --dir "$TMPD/run" --installations "$K" --resources "$M" \
    --items "$N" --mix 2>"$OUT/outbox-prepare.log" | tee "$OUT/outbox-prepare.json" >&2

  say "starting the stand-in (${STANDIN_THREADS:-1} I/O thread)"
  setsid "$BUILD/wharf-bench-outbox" standin --installations "$K" --port 0 \
    --threads "${STANDIN_THREADS:-1}" >"$TMPD/standin.port" 2>"$OUT/outbox-standin.log" &
  SBPID=$!
  for _ in $(seq 100); do [ -s "$TMPD/standin.port" ] && break; sleep 0.1; done
  PORT=$(head -n1 "$TMPD/standin.port")
  [ -n "$PORT" ] || die "the stand-in did not start (see bench/out/outbox-standin.log)"

  say "outbox: delivering $N items ($C senders) to the stand-in on :$PORT"
  "${DELIVER_BIN:-$BUILD/wharf-bench-outbox}" deliver --dir "$TMPD/run" \
    --url "http://127.0.0.1:$PORT" --standin --concurrency "$C" --timeout "${TIMEOUT:-600}" \
    $([ "${KEEPALIVE:-1}" = 0 ] && echo --no-keepalive) \
    2>"$OUT/outbox-deliver.log" | tee "$OUT/outbox-deliver.json" >&2 || true

  # The stand-in's own ceiling for the same requests (keep-alive, as many connections as the
  # outbox has senders): shows whether the stand-in, not Wharf, is what limits the figure.
  say "raw: wrk -t1 -c$C -d$DURATION against the stand-in, same requests (keep-alive)"
  REQUESTS="$TMPD/run/requests.tsv" wrk -t1 -c"$C" -d"$DURATION" -s "$ROOT/bench/outbox.lua" \
    --latency "http://127.0.0.1:$PORT" | tee "$OUT/outbox-wrk.txt" >&2

  CONCURRENCY="$C" $PY - "$OUT" "${TARGET:-1000}" <<'EOF' | tee "$OUT/outbox-report.txt"
import json, os, re, sys

out, target = sys.argv[1], float(sys.argv[2])
prep = json.load(open(os.path.join(out, "outbox-prepare.json")))
text = open(os.path.join(out, "outbox-deliver.json")).read().strip()
if not text:
    print("INVALID RUN: the delivery printed nothing (see bench/out/outbox-deliver.log)")
    sys.exit(1)
d = json.loads(text)
w = open(os.path.join(out, "outbox-wrk.txt")).read()
m = re.search(r"Requests/sec:\s+([0-9.]+)", w)
wrk_rps = float(m.group(1)) if m else None
m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", w)
wrk_non2xx = int(m.group(1)) if m else 0

n = max(1, d["delivered"])
secs = d["seconds"]
wharf_cpu = d["cpu_user_s"] + d["cpu_sys_s"]
sti_cpu = d["standin_cpu_user_s"] + d["standin_cpu_sys_s"]
print(f"\nWharf outbox delivery to the stand-in: {d['items']:,} items (billing data and events) "
      f"of {d['installations']} installations, {os.environ['CONCURRENCY']} senders; billing bodies "
      f"of mean {prep['mean_body_bytes']:,.0f} B\n")
print(f"delivered        {d['delivered']:,} in {secs:.2f} s = {d['items_per_s']:,.1f} items/s "
      f"(dead {d['dead']}, left pending {d['left_pending']}, duplicates {d['duplicates']})")
print(f"wharf CPU        user {d['cpu_user_s']:.2f} s + system {d['cpu_sys_s']:.2f} s "
      f"= {wharf_cpu / secs:.2f} cores, {wharf_cpu * 1e6 / n:,.0f} us/item")
print(f"stand-in CPU     user {d['standin_cpu_user_s']:.2f} s + system {d['standin_cpu_sys_s']:.2f} s "
      f"= {sti_cpu / secs:.2f} cores, {sti_cpu * 1e6 / n:,.0f} us/item")
print(f"stand-in alone   wrk -t1 -c{os.environ['CONCURRENCY']} keep-alive, same requests: "
      f"{'n/a' if wrk_rps is None else f'{wrk_rps:,.0f}'} req/s (non-2xx {wrk_non2xx})")
print(f"stand-in         accepted {d['standin_accepted']:,}, rejected {d['standin_rejected']}")
valid = d["dead"] == 0 and d["left_pending"] == 0 and d["standin_rejected"] == 0
if not valid:
    print("INVALID RUN: items dead, left pending or rejected by the stand-in (see bench/out/outbox-*)")
fast = d["items_per_s"] >= target
print(f"{'PASS' if fast and valid else 'FAIL'}: >= {target:,.0f} items/s ({d['items_per_s']:,.1f})")
bad = d["order_bad_installations"]
print(f"{'PASS' if d['order_ok'] and valid else 'FAIL'}: order per installation kept "
      f"({d['installations'] - bad}/{d['installations']} installations exactly in enqueue order"
      + (f"; first bad {d['order_first_bad']}" if d["order_first_bad"] else "") + ")")
print(json.dumps({"bench": "outbox", "mode": "standin", "prepare": prep, "outbox": d,
                  "standin_wrk_rps": wrk_rps, "valid": valid, "target_met": fast and valid,
                  "order_kept": bool(d["order_ok"]) and valid}))
EOF
  exit 0
fi

say "building wharf-sandbox and wharf-bench-outbox"
cmake --build "$BUILD" -j"$(nproc)" --target wharf-sandbox wharf-bench-outbox >&2

say "prepare: $K installations x $M resources, $N outbox items"
"$BUILD/wharf-bench-outbox" prepare --dir "$TMPD/run" --installations "$K" --resources "$M" \
  --items "$N" 2>"$OUT/outbox-prepare.log" | tee "$OUT/outbox-prepare.json" >&2

PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
say "starting wharf-sandbox on :$PORT"
(cd "$TMPD/run" && exec env -u SANDBOX_PUBLIC_URL -u SANDBOX_WEBHOOK_URL \
   INTEGRATION_CLIENT_ID=oac_outboxBench000000000000 \
   INTEGRATION_CLIENT_SECRET=outbox-bench-client-secret-0123456789 \
   SANDBOX_LISTEN="127.0.0.1:$PORT" SANDBOX_DATA_DIR="$TMPD/run/sandbox" \
   SANDBOX_PARTNER_URL=http://127.0.0.1:9 \
   setsid "$BUILD/wharf-sandbox" serve) >"$OUT/outbox-sandbox.log" 2>&1 &
SBPID=$!
$PY - "http://127.0.0.1:$PORT/_sandbox/config" <<'EOF'
import sys, time, urllib.request
deadline = time.time() + 30
while time.time() < deadline:
    try:
        if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
sys.exit("wharf-sandbox did not start")
EOF

say "outbox: delivering $N items (Outbox worker, sequential)"
"$BUILD/wharf-bench-outbox" deliver --dir "$TMPD/run" --url "http://127.0.0.1:$PORT" \
  2>"$OUT/outbox-deliver.log" | tee "$OUT/outbox-deliver.json" >&2 ||
  die "the outbox did not deliver every item (see bench/out/outbox-deliver.*)"

# The sandbox's own handling time for the last deliveries (its exchange log keeps 5,000).
fetch_log() {  # file: the sandbox's exchanges since the previous fetch
  curl -sf "http://127.0.0.1:$PORT/_sandbox/log?after=${LAST_ID:-0}&limit=5000" >"$1"
  LAST_ID=$($PY -c 'import json,sys; e=json.load(open(sys.argv[1]))["exchanges"]; print(e[-1]["id"] if e else sys.argv[2])' "$1" "${LAST_ID:-0}")
}
fetch_log "$TMPD/log.json"
# The sandbox's state on disk: its snapshot plus the journal of changes since.
cat "$TMPD/run/sandbox/sandbox-state.json" "$TMPD/run/sandbox/sandbox-state.json.journal" \
  2>/dev/null | wc -c >"$OUT/outbox-state-bytes.txt"

say "raw: wrk -t1 -c1 -d$DURATION, same requests (keep-alive)"
REQUESTS="$TMPD/run/requests.tsv" wrk -t1 -c1 -d"$DURATION" -s "$ROOT/bench/outbox.lua" \
  --latency "http://127.0.0.1:$PORT" | tee "$OUT/outbox-wrk.txt" >&2
fetch_log "$TMPD/log-keepalive.json"
say "raw: wrk -t1 -c1 -d$DURATION, same requests, Connection: close"
CLOSE=1 REQUESTS="$TMPD/run/requests.tsv" wrk -t1 -c1 -d"$DURATION" -s "$ROOT/bench/outbox.lua" \
  --latency "http://127.0.0.1:$PORT" | tee "$OUT/outbox-wrk-close.txt" >&2
fetch_log "$TMPD/log-close.json"

$PY - "$OUT" "$TMPD" <<'EOF' | tee "$OUT/outbox-report.txt"
import json, os, re, sys

out, tmpd = sys.argv[1], sys.argv[2]
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}

def wrk(name):
    text = open(os.path.join(out, name)).read()
    r = {"rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1))}
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+([0-9.]+)(us|ms|s|m)\s*$" % pct, text, re.M)
        r["p" + pct] = float(m.group(1)) * UNITS[m.group(2)] if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return r

def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))] if v else None

prep = json.load(open(os.path.join(out, "outbox-prepare.json")))
dlv = json.load(open(os.path.join(out, "outbox-deliver.json")))
keep, close = wrk("outbox-wrk.txt"), wrk("outbox-wrk-close.txt")
def handled(name):  # the sandbox's own handling times (ms) of one phase's 201 answers
    log = json.load(open(os.path.join(tmpd, name))).get("exchanges", [])
    return [e["durationMs"] for e in log if e.get("direction") == "from-partner" and e.get("status") == 201]

sb, sb_keep, sb_close = handled("log.json"), handled("log-keepalive.json"), handled("log-close.json")
state_bytes = int(open(os.path.join(out, "outbox-state-bytes.txt")).read().strip() or 0)

def f(x, nd=1):
    return "n/a" if x is None else f"{x:,.{nd}f}"

print(f"\nWharf outbox delivery benchmark: {dlv['items']} x POST /v1/installations/{{id}}/billing "
      f"({prep['installations']} installations, {prep['distinct_bodies']} distinct bodies, "
      f"mean body {prep['mean_body_bytes']:,.0f} B), sandbox state file {state_bytes:,} B\n")
print(f"{'run':50} {'items/s':>9} {'p50 ms':>8} {'p99 ms':>8}  errors")
print(f"{'outbox worker (cycle time per delivery)':50} {f(dlv['items_per_s']):>9} {f(dlv['cycle_ms_p50'], 2):>8} "
      f"{f(dlv['cycle_ms_p99'], 2):>8}  dead {dlv['dead']}, left {dlv['left_pending']}")
print(f"{'wrk -c1 raw, keep-alive':50} {f(keep['rps']):>9} {f(keep['p50'], 2):>8} {f(keep['p99'], 2):>8}  "
      f"non-2xx {keep['non2xx']}, socket {keep['socket_errors']}")
print(f"{'wrk -c1 raw, Connection: close':50} {f(close['rps']):>9} {f(close['p50'], 2):>8} "
      f"{f(close['p99'], 2):>8}  non-2xx {close['non2xx']}, socket {close['socket_errors']}")
for label, v in (("outbox", sb), ("wrk keep-alive", sb_keep), ("wrk close", sb_close)):
    print(f"{'  sandbox handling during %s (last %d)' % (label, len(v)):50} {'':>9} "
          f"{f(pct(v, .5), 2):>8} {f(pct(v, .99), 2):>8}")
print(f"\noutbox / raw keep-alive:       {dlv['items_per_s'] / keep['rps']:.2f}x")
print(f"outbox / raw Connection:close: {dlv['items_per_s'] / close['rps']:.2f}x")
valid = dlv["dead"] == 0 and dlv["left_pending"] == 0 and keep["non2xx"] == 0 and close["non2xx"] == 0
if not valid:
    print("INVALID RUN: some calls failed (see bench/out/outbox-*)")
print(json.dumps({"bench": "outbox", "prepare": prep, "outbox": dlv, "raw_keepalive": keep,
                  "raw_close": close, "sandbox_handling_ms_p50": {"outbox": pct(sb, .5), "wrk_keepalive": pct(sb_keep, .5),
                                              "wrk_close": pct(sb_close, .5)},
                  "sandbox_state_bytes": state_bytes,
                  "ratio_outbox_over_raw_keepalive": dlv["items_per_s"] / keep["rps"],
                  "ratio_outbox_over_raw_close": dlv["items_per_s"] / close["rps"],
                  "valid": valid}))
EOF
