#!/usr/bin/env bash
# Soak test: a steady mixed load against a real wharf (with a real wharf-sandbox as its
# Vercel) for SOAK_SECONDS, sampling the server's fd count, RSS and the requests' latency
# every second. Prints PASS/FAIL lines and exits non-zero on FAIL. See bench/README.md
# ("Soak"); the load itself is bench/soak.py.
#
# Knobs (env): SOAK_SECONDS (600), SOAK_WARMUP (20% of the run), SOAK_RATE (1.0: scales
#   every lane's rate), SOAK_LIVE (16 databases alive besides the anchor), SOAK_OUT (where
#   soak-samples.csv, soak-report.txt, soak-summary.json and the logs go; default
#   build/soak), SOAK_LANES (comma-separated subset of fresh,cached,dp-read,dp-write,churn,
#   repl,ops; default all: for finding which traffic a leak follows), SOAK_PRELOAD (0:
#   resources provisioned and deleted before the run, so the store starts that big),
#   SOAK_BILLING_INTERVAL_S (60: wharf's billing pass period), WHARF_BIN / SANDBOX_BIN
#   (default build/wharf, build/wharf-sandbox; copied into a private temp dir first),
#   WHARF_THREADS (passed to wharf), SHARED_DIR, SOAK_WRAP (a command wharf runs under, e.g.
#   "heaptrack -o /tmp/ht": its fd/RSS are then the wrapper-laden process's),
#   SOAK_WAIT_BUILD_MIN (30: minutes to wait, polling each minute, for missing binaries).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=/usr/bin/python3
SECONDS_RUN="${SOAK_SECONDS:-600}"
OUT="${SOAK_OUT:-$ROOT/build/soak}"
WHARF_SRC="${WHARF_BIN:-$ROOT/build/wharf}"
SANDBOX_SRC="${SANDBOX_BIN:-$ROOT/build/wharf-sandbox}"
AUD=oac_soak
INST=icfg_soak0000000000000000001
ACCESS=tok_soak_access_token_0123456789
SECRET=soak-client-secret-0123456789
ISSUER=https://marketplace.vercel.com

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'soak: %s\n' "$*" >&2; exit 2; }

[[ "$SECONDS_RUN" =~ ^[0-9]+$ ]] && [ "$SECONDS_RUN" -ge 20 ] && [ "$SECONDS_RUN" -le 86400 ] ||
  die "SOAK_SECONDS must be a whole number of seconds, 20..86400"
$PY -c 'import cryptography' 2>/dev/null || die "python3-cryptography missing (apt-get install python3-cryptography)"
SHARED="${SHARED_DIR:-$ROOT/../shared}"
[ -f "$SHARED/bench/lib/jwtkit.py" ] || die "$SHARED/bench/lib/jwtkit.py not found (set SHARED_DIR)"

# Other people may be rebuilding build/: wait (bounded) for both binaries, then work on copies.
for ((i = 0; ; i++)); do
  [ -x "$WHARF_SRC" ] && [ -x "$SANDBOX_SRC" ] && break
  [ "$i" -lt "${SOAK_WAIT_BUILD_MIN:-30}" ] || die "$WHARF_SRC or $SANDBOX_SRC missing (make build)"
  say "waiting for $WHARF_SRC and $SANDBOX_SRC (a build may be running)"
  sleep 60
done

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
TMPD="$(mktemp -d /tmp/wharf-soak.XXXXXX)"
mkdir -p "$TMPD/bin" "$TMPD/data" "$TMPD/sandbox" "$OUT"
rm -f "$OUT"/soak-* "$OUT"/wharf.log "$OUT"/sandbox.log
cp "$WHARF_SRC" "$TMPD/bin/wharf"
cp "$SANDBOX_SRC" "$TMPD/bin/wharf-sandbox"
"$TMPD/bin/wharf" help >/dev/null 2>&1 || die "the copy of $WHARF_SRC does not run (a build was writing it?)"
"$TMPD/bin/wharf-sandbox" help >/dev/null 2>&1 || die "the copy of $SANDBOX_SRC does not run"
say "binaries: $(sha256sum "$TMPD/bin/wharf" | cut -c1-12) wharf, $(sha256sum "$TMPD/bin/wharf-sandbox" | cut -c1-12) wharf-sandbox (built $(date -r "$WHARF_SRC" '+%F %T'))"

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

# Tokens: fresh system tokens for the "fresh" lane and half the deletes (40.5/s x scale), user
# tokens for provisions, replays, the other deletes and half the REPL calls (3.75/s x scale),
# 10% spare; valid for the run plus an hour.
SCALE="${SOAK_RATE:-1.0}"
NSYS=$($PY -c "import math; print(math.ceil((40 + 0.5) * $SCALE * $SECONDS_RUN * 1.1) + 100)")
NUSER=$($PY -c "import math; print(math.ceil((2 + 1.75) * $SCALE * $SECONDS_RUN * 1.1) + 100 + ${SOAK_LIVE:-16} + 2 * ${SOAK_PRELOAD:-0})")
say "minting $NSYS system and $NUSER user tokens"
SHARED_DIR="$SHARED" $PY "$ROOT/bench/soak.py" mint "$TMPD/tokens" --aud $AUD --inst $INST \
  --system "$NSYS" --user "$NUSER" --ttl $((SECONDS_RUN + 3600))

JPORT=$(free_port)
setsid $PY "$ROOT/bench/jwks_server.py" "$TMPD/tokens/jwks.json" "$JPORT" &
PIDS+=("$!")

WPORT=$(free_port)
SPORT=$(free_port)
# The sandbox plays Vercel for wharf's outbound calls (billing data, events): seeded with the
# installation and the access token the Upsert hands over, as tests/integration seeds it.
$PY - "$TMPD/sandbox/sandbox-state.json" "$INST" "$ACCESS" <<'EOF'
import json, sys
path, icfg, token = sys.argv[1:4]
json.dump({"installations": {icfg: {
    "id": icfg, "accountHex": "a1b2c3", "accountId": "team_a1b2c3", "status": "active",
    "accessTokens": [token], "users": {},
    "account": {"name": "Soak", "url": "https://vercel.com/soak", "contact": None}}}}, open(path, "w"))
EOF
say "starting wharf-sandbox on :$SPORT"
(cd "$TMPD/sandbox" && exec env -u SANDBOX_PUBLIC_URL -u SANDBOX_WEBHOOK_URL -u SANDBOX_ISSUER \
   INTEGRATION_CLIENT_ID=$AUD INTEGRATION_CLIENT_SECRET=$SECRET \
   SANDBOX_LISTEN="127.0.0.1:$SPORT" SANDBOX_DATA_DIR="$TMPD/sandbox" \
   SANDBOX_PARTNER_URL="http://127.0.0.1:$WPORT" \
   setsid "$TMPD/bin/wharf-sandbox" serve) >"$TMPD/sandbox.log" 2>&1 &
SBPID=$!
PIDS+=("$SBPID")
wait_http "http://127.0.0.1:$SPORT/_sandbox/config" 200 30

say "starting wharf on :$WPORT (JWKS on :$JPORT, Vercel API = sandbox)"
env -u WHARF_CATALOG -u WHARF_ENCRYPTION_KEY -u WHARF_STATE_URL -u WHARF_PUBLIC_URL \
  -u WHARF_TEST_CLOCK -u WHARF_INVOICE_TEST_MODE \
  INTEGRATION_CLIENT_ID=$AUD INTEGRATION_CLIENT_SECRET=$SECRET \
  WHARF_LISTEN=127.0.0.1:$WPORT WHARF_DATA_DIR="$TMPD/data" WHARF_LOG_LEVEL=info \
  WHARF_OIDC_ISSUER=$ISSUER WHARF_JWKS_URL="http://127.0.0.1:$JPORT/.well-known/jwks" \
  WHARF_VERCEL_API_URL="http://127.0.0.1:$SPORT" WHARF_BILLING_INTERVAL_S="${SOAK_BILLING_INTERVAL_S:-60}" \
  ${WHARF_THREADS:+WHARF_THREADS=$WHARF_THREADS} \
  setsid ${SOAK_WRAP:-} "$TMPD/bin/wharf" serve 2>"$TMPD/wharf.log" >/dev/null &
WPID=$!   # the process we started (with SOAK_WRAP: the wrapper)
PIDS+=("$WPID")
wait_http "http://127.0.0.1:$WPORT/readyz" 200 60
SPID=$WPID  # the server itself, sampled and stopped
if [ -n "${SOAK_WRAP:-}" ]; then
  SPID=$($PY - "$TMPD/bin/wharf" <<'EOF'
import os, sys
for d in os.listdir("/proc"):
    try:
        if d.isdigit() and os.readlink(f"/proc/{d}/exe") == sys.argv[1]:
            print(d); break
    except OSError:
        pass
EOF
)
  [ -n "$SPID" ] || die "no process runs $TMPD/bin/wharf under SOAK_WRAP"
  say "SOAK_WRAP: sampling wharf pid $SPID (wrapper pid $WPID)"
fi

set +e
$PY "$ROOT/bench/soak.py" run --base "http://127.0.0.1:$WPORT" --pid "$SPID" \
  --sandbox-pid "$SBPID" --data-dir "$TMPD/data" --tokens "$TMPD/tokens" --inst $INST \
  --access-token $ACCESS --seconds "$SECONDS_RUN" ${SOAK_WARMUP:+--warmup $SOAK_WARMUP} \
  --rate-scale "$SCALE" --live "${SOAK_LIVE:-16}" --out "$OUT" ${SOAK_LANES:+--lanes "$SOAK_LANES"} \
  --preload "${SOAK_PRELOAD:-0}"
RC=$?
set -e

# The server's own account: warn/error lines, and whether it still shuts down cleanly.
ALIVE=0; kill -0 "$SPID" 2>/dev/null && ALIVE=1
kill -TERM "$SPID" 2>/dev/null || true
for _ in $(seq 1 600); do kill -0 "$WPID" 2>/dev/null || break; sleep 0.1; done  # a wrapper may take a while
WRC=0; wait "$WPID" 2>/dev/null || WRC=$?
cp "$TMPD/wharf.log" "$OUT/wharf.log"
cp "$TMPD/sandbox.log" "$OUT/sandbox.log"
{
  echo "wharf log: $(wc -l <"$OUT/wharf.log") lines, $(grep -c '"level":"warn"' "$OUT/wharf.log" || true) warn, $(grep -c '"level":"error"' "$OUT/wharf.log" || true) error"
  { grep -E '"level":"(warn|error)"' "$OUT/wharf.log" || true; } | sed -E 's/"ts":"[^"]*",?//' |
    cut -c1-160 | sort | uniq -c | sort -rn | head -8 | sed 's/^/  /' || true
  echo "wharf exit status after SIGTERM: $WRC"
} | tee -a "$OUT/soak-report.txt"
if [ "$ALIVE" = 1 ] && [ "$WRC" != 0 ]; then
  echo "FAIL clean shutdown: wharf exited $WRC on SIGTERM" | tee -a "$OUT/soak-report.txt"
  RC=1
fi
exit "$RC"
