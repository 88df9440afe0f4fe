#!/usr/bin/env bash
# Fresh-token benchmark: Wharf side by side with ../shared/bench/node-baseline, same run,
# same machine, loopback. See bench/README.md. Raw outputs and report.md land in bench/out/.
#
# Knobs (env): WHARF_BIN, SHARED_DIR, DURATION (10s), WARMUP (3s), CONNS (32),
#   NODE_TOKENS (150000), WHARF_TOKENS (300000), WHARF_THREADS (unset = wharf's default),
#   (the data plane's abuse limits are turned off: the point is the server's ceiling),
#   SKIP_NODE=1 (wharf only), KEEP_TOKENS=1 (never re-mint), PERF=1 (profile wharf during the
#   fresh-token Get Installation run with `perf record -g`: bench/out/perf-wharf-inst.txt lists
#   the top symbols, self time; the profile's overhead makes that run's figures not comparable).
# `bench/run.sh billing`, `bench/run.sh outbox`, `bench/run.sh soak`, `bench/run.sh libsql`,
# `bench/run.sh flags`, `bench/run.sh products` and `bench/run.sh replicas` run bench/billing.sh,
# bench/outbox.sh, bench/soak.sh, bench/libsql.py, bench/flags.py, bench/products.py and
# bench/replicas.py instead (their own knobs: see those scripts).
set -euo pipefail

case "${1:-}" in
  billing) exec "$(dirname "${BASH_SOURCE[0]}")/billing.sh" ;;
  outbox) exec "$(dirname "${BASH_SOURCE[0]}")/outbox.sh" ;;
  soak) exec "$(dirname "${BASH_SOURCE[0]}")/soak.sh" ;;
  libsql) exec /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/libsql.py" ;;
  flags) exec /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/flags.py" ;;
  products) exec /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/products.py" ;;
  replicas) exec /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/replicas.py" ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${SHARED_DIR:-$ROOT/../shared}"
OUT="$ROOT/bench/out"
PY=/usr/bin/python3
WHARF="${WHARF_BIN:-$ROOT/build/wharf}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-3s}"
CONNS="${CONNS:-32}"
NODE_TOKENS="${NODE_TOKENS:-150000}"
WHARF_TOKENS="${WHARF_TOKENS:-300000}"
AUD=oac_bench
INST=icfg_bench
ISSUER=https://marketplace.vercel.com
LUA="$SHARED/bench/tokens.lua"
WRK_ARGS="-t1 -c$CONNS -d$DURATION -s tokens.lua --latency"

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

for tool in wrk node npm openssl; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install wrk nodejs npm openssl)"
done
$PY -c 'import cryptography' 2>/dev/null || die "python3-cryptography missing (apt-get install python3-cryptography)"
[ -x "$WHARF" ] || die "$WHARF not built (make build)"
[ -f "$LUA" ] || die "$LUA not found (set SHARED_DIR to the shared/ folder)"
mkdir -p "$OUT"

PIDS=()   # every background process this script started (each leads its own session)
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for pid in "${PIDS[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  [ -n "${TMPD:-}" ] && rm -rf "$TMPD"
}
trap cleanup EXIT
TMPD="$(mktemp -d /tmp/wharf-bench.XXXXXX)"

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() {  # url expected_status timeout_s
  $PY - "$1" "$2" "$3" <<'EOF'
import sys, time, urllib.request, urllib.error
url, want, deadline = sys.argv[1], int(sys.argv[2]), time.time() + float(sys.argv[3])
while time.time() < deadline:
    try:
        code = urllib.request.urlopen(url, timeout=2).status
    except urllib.error.HTTPError as e:
        code = e.code
    except Exception:
        code = None
    if code == want:
        sys.exit(0)
    time.sleep(0.1)
sys.exit(f"{url} did not answer {want}")
EOF
}

fresh() {  # file max_age_minutes expected_lines
  [ "${KEEP_TOKENS:-0}" = 1 ] && [ -s "$1" ] && return 0
  [ -s "$1" ] && [ -z "$(find "$1" -mmin +"$2")" ] && [ "$(wc -l <"$1")" -eq "$3" ]
}

run_wrk() {  # name url target_path tokens_file pid_to_sample
  local name=$1 url=$2 target=$3 tokens=$4 pid=$5
  say "warm-up $name ($WARMUP)"
  (cd "$SHARED/bench" && TOKENS="$tokens" TARGET_PATH="$target" \
     wrk -t1 -c"$CONNS" -d"$WARMUP" -s tokens.lua "$url" >/dev/null)
  say "wrk $name: $WRK_ARGS $url$target"
  setsid $PY "$ROOT/bench/sample.py" "$pid" "$OUT/sample-$name.json" 0.1 &
  local spid=$!
  PIDS+=("$spid")
  (cd "$SHARED/bench" && TOKENS="$tokens" TARGET_PATH="$target" \
     wrk -t1 -c"$CONNS" -d"$DURATION" -s tokens.lua --latency "$url") | tee "$OUT/wrk-$name.txt" >&2
  kill -TERM "$spid"
  wait "$spid" 2>/dev/null || true
}

rm -f "$OUT"/wrk-*.txt "$OUT"/sample-*.json "$OUT"/report.md

# ---------------------------------------------------------------- tokens
if [ "${SKIP_NODE:-0}" != 1 ]; then
  if fresh "$OUT/node/tokens.txt" 40 "$NODE_TOKENS"; then
    say "reusing $OUT/node/tokens.txt"
  else
    say "minting $NODE_TOKENS user tokens for node (shared mint_tokens.py)"
    $PY "$SHARED/bench/mint_tokens.py" "$OUT/node" "$NODE_TOKENS" "$AUD" "$INST"
  fi
fi
if fresh "$OUT/wharf/tokens.txt" 300 "$WHARF_TOKENS"; then
  say "reusing $OUT/wharf/tokens.txt"
else
  say "minting $WHARF_TOKENS system tokens for wharf"
  SHARED_DIR="$SHARED" $PY "$ROOT/bench/mint_system_tokens.py" "$OUT/wharf" "$WHARF_TOKENS" "$AUD" "$INST"
fi

# ---------------------------------------------------------------- node baseline
if [ "${SKIP_NODE:-0}" != 1 ]; then
  NODE_DIR="$OUT/node-baseline"
  mkdir -p "$NODE_DIR"
  cp "$SHARED/bench/node-baseline/package.json" "$SHARED/bench/node-baseline/server.mjs" "$NODE_DIR/"
  if [ ! -d "$NODE_DIR/node_modules/jose" ]; then
    say "npm install (node-baseline)"
    (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error)
  fi
  NPORT=$(free_port)
  say "starting node-baseline (WORKERS=2) on :$NPORT"
  (cd "$NODE_DIR" && JWKS_FILE="$OUT/node/jwks.json" INTEGRATION_CLIENT_ID=$AUD PORT=$NPORT WORKERS=2 \
     exec setsid node server.mjs) >"$OUT/node.log" 2>&1 &
  NPID=$!
  PIDS+=("$NPID")
  # node answers 403 without a token once it listens
  wait_http "http://127.0.0.1:$NPORT/" 403 30
  sleep 1  # let every cluster worker come up
  run_wrk node "http://127.0.0.1:$NPORT" "/v1/installations/$INST/resources/res_bench" "$OUT/node/tokens.txt" "$NPID"
  kill -TERM -- "-$NPID" 2>/dev/null || kill -TERM "$NPID" || true
  wait "$NPID" 2>/dev/null || true
fi

# ---------------------------------------------------------------- wharf
JPORT=$(free_port)
setsid $PY "$ROOT/bench/jwks_server.py" "$OUT/wharf/jwks.json" "$JPORT" &
PIDS+=("$!")
WPORT=$(free_port)
mkdir -p "$TMPD/data"
say "starting wharf on :$WPORT (JWKS on :$JPORT)"
env -u WHARF_CATALOG -u WHARF_ENCRYPTION_KEY \
  INTEGRATION_CLIENT_ID=$AUD INTEGRATION_CLIENT_SECRET=bench-secret \
  WHARF_LISTEN=127.0.0.1:$WPORT WHARF_DATA_DIR="$TMPD/data" \
  WHARF_OIDC_ISSUER=$ISSUER WHARF_JWKS_URL="http://127.0.0.1:$JPORT/.well-known/jwks" \
  WHARF_VERCEL_API_URL=http://127.0.0.1:9 ${WHARF_THREADS:+WHARF_THREADS=$WHARF_THREADS} \
  WHARF_RATE_LIMIT_TOKEN=off WHARF_RATE_LIMIT_INSTALLATION=off \
  setsid "$WHARF" serve 2>"$OUT/wharf.log" &
WPID=$!
PIDS+=("$WPID")
wait_http "http://127.0.0.1:$WPORT/readyz" 200 30

say "upserting $INST"
$PY - "http://127.0.0.1:$WPORT/v1/installations/$INST" "$OUT/wharf/admin_token.txt" <<'EOF'
import json, sys, urllib.request
url, tok = sys.argv[1], open(sys.argv[2]).read().strip()
body = {"scopes": ["read:resource"], "acceptedPolicies": {"toc": "2024-02-28T10:00:00Z"},
        "credentials": {"access_token": "tok_bench", "token_type": "Bearer"},
        "account": {"url": "https://vercel.com/bench", "contact": {"email": "bench@example.com"}}}
req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT",
                             headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=30) as r:
    assert r.status == 200, r.status
EOF

run_wrk wharf-plans "http://127.0.0.1:$WPORT" "/v1/installations/$INST/plans" "$OUT/wharf/tokens.txt" "$WPID"
if [ "${PERF:-0}" = 1 ]; then
  command -v perf >/dev/null || die "perf not found (apt-get install linux-perf)"
  perf record -F 999 -g -p "$WPID" -o "$OUT/perf-wharf-inst.data" 2>"$OUT/perf-record.log" &
  PERFPID=$!
fi
run_wrk wharf-inst "http://127.0.0.1:$WPORT" "/v1/installations/$INST" "$OUT/wharf/tokens.txt" "$WPID"
if [ "${PERF:-0}" = 1 ]; then
  kill -INT "$PERFPID"; wait "$PERFPID" 2>/dev/null || true
  perf report -i "$OUT/perf-wharf-inst.data" --no-children -g none --sort dso,symbol --percent-limit 0.5 \
    --stdio 2>/dev/null | grep -E "^ +[0-9]" | sed -E "s/[[:space:]]+-[[:space:]]+-[[:space:]]*$//" >"$OUT/perf-wharf-inst.txt" || true
  perf report -i "$OUT/perf-wharf-inst.data" --no-children -g none --sort dso --stdio 2>/dev/null |
    grep -E "^ +[0-9]" | sed -E "s/[[:space:]]+$//" >"$OUT/perf-wharf-inst-dso.txt" || true
  say "perf: share of each library, then top symbols (self) of the Get Installation run"
  cat "$OUT/perf-wharf-inst-dso.txt" >&2
  head -40 "$OUT/perf-wharf-inst.txt" >&2
fi

# Resources: provision latency, then Get Resource (same route shape as node's) and
# data-plane point queries.
say "provisioning ${PROVISIONS:-200} SQLite databases (latency)"
RID=$($PY "$ROOT/bench/resources.py" "http://127.0.0.1:$WPORT" "$INST" "$OUT/wharf/admin_token.txt" "$OUT" "${PROVISIONS:-200}")
run_wrk wharf-resource "http://127.0.0.1:$WPORT" "/v1/installations/$INST/resources/$RID" "$OUT/wharf/tokens.txt" "$WPID"
DB_TOKEN=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$OUT/resource.json")
say "wrk data plane: point queries on /v1/databases/$RID/query"
setsid $PY "$ROOT/bench/sample.py" "$WPID" "$OUT/sample-wharf-query.json" 0.1 &
QSPID=$!
PIDS+=("$QSPID")
DB_TOKEN="$DB_TOKEN" TARGET_PATH="/v1/databases/$RID/query" \
  wrk -t1 -c"$CONNS" -d"$DURATION" -s "$ROOT/bench/query.lua" --latency "http://127.0.0.1:$WPORT" \
  | tee "$OUT/wrk-wharf-query.txt" >&2
kill -TERM "$QSPID"; wait "$QSPID" 2>/dev/null || true

grep -E '^Vm(HWM|RSS)' "/proc/$WPID/status" >"$OUT/wharf-final-status.txt" || true
kill -TERM "$WPID"
wait "$WPID" 2>/dev/null || true

# ---------------------------------------------------------------- openssl ceiling
say "openssl speed -seconds 3 rsa2048"
openssl speed -seconds 3 rsa2048 >"$OUT/openssl.txt" 2>/dev/null

NT=$NODE_TOKENS; [ "${SKIP_NODE:-0}" = 1 ] && NT=0
$PY - "$OUT/meta.json" <<EOF
import json, os, sys, time
json.dump({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": os.cpu_count(),
           "wrk_args": "$WRK_ARGS", "node_tokens": $NT,
           "wharf_tokens": $WHARF_TOKENS, "duration": "$DURATION"}, open(sys.argv[1], "w"))
EOF
echo
$PY "$ROOT/bench/report.py" "$OUT"
