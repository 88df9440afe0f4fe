#!/usr/bin/env bash
# `make run`: starts Wharf on the embedded default (SQLite state under ./data, built-in
# catalog).
#
# Without INTEGRATION_CLIENT_ID: starts the local marketplace wharf-sandbox and wharf wired to
# each other on loopback, installs a demo team, and prints what to open and try.
# With INTEGRATION_CLIENT_ID and INTEGRATION_CLIENT_SECRET: starts wharf alone against
# Vercel (tokens verified with Vercel's JWKS, Vercel API at api.vercel.com).
set -euo pipefail
cd "$(dirname "$0")/.."

export WHARF_DATA_DIR="${WHARF_DATA_DIR:-./data}"
mkdir -p "$WHARF_DATA_DIR"
chmod 700 "$WHARF_DATA_DIR"

if [ -n "${INTEGRATION_CLIENT_ID:-}" ]; then
  if [ -z "${INTEGRATION_CLIENT_SECRET:-}" ]; then
    echo "make run: INTEGRATION_CLIENT_ID is set but INTEGRATION_CLIENT_SECRET is not" >&2
    exit 2
  fi
  echo "make run: starting wharf against Vercel (client $INTEGRATION_CLIENT_ID)" >&2
  exec build/wharf serve
fi

# --- local marketplace ------------------------------------------------------------------
WHARF_PORT="${WHARF_PORT:-3000}"
SANDBOX_PORT="${SANDBOX_PORT:-4000}"
SANDBOX_URL="http://127.0.0.1:$SANDBOX_PORT"
WHARF_URL="http://127.0.0.1:$WHARF_PORT"
SANDBOX_DIR="$WHARF_DATA_DIR/sandbox"
mkdir -p "$SANDBOX_DIR"
CLIENT_ID="oac_sandboxDemo00000000000000"
SECRET_FILE="$SANDBOX_DIR/client-secret"
if [ ! -s "$SECRET_FILE" ]; then
  (umask 077 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "$SECRET_FILE")
fi
CLIENT_SECRET="$(cat "$SECRET_FILE")"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_for() {  # url, name
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "make run: $2 did not come up at $1 (see $WHARF_DATA_DIR/*.log)" >&2
  exit 1
}

INTEGRATION_CLIENT_ID="$CLIENT_ID" INTEGRATION_CLIENT_SECRET="$CLIENT_SECRET" \
SANDBOX_LISTEN="127.0.0.1:$SANDBOX_PORT" SANDBOX_DATA_DIR="$SANDBOX_DIR" \
SANDBOX_PARTNER_URL="$WHARF_URL" \
  build/wharf-sandbox serve 2>>"$WHARF_DATA_DIR/sandbox.log" &
pids+=($!)
wait_for "$SANDBOX_URL/_sandbox/config" wharf-sandbox

INTEGRATION_CLIENT_ID="$CLIENT_ID" INTEGRATION_CLIENT_SECRET="$CLIENT_SECRET" \
WHARF_LISTEN="127.0.0.1:$WHARF_PORT" WHARF_OIDC_ISSUER="$SANDBOX_URL" \
WHARF_JWKS_URL="$SANDBOX_URL/.well-known/jwks" WHARF_VERCEL_API_URL="$SANDBOX_URL" \
WHARF_PUBLIC_URL="$WHARF_URL" WHARF_URL_SLUG=wharf-sandbox \
WHARF_VERCEL_SSO_URL="$SANDBOX_URL/sso/integrations" \
  build/wharf serve 2>>"$WHARF_DATA_DIR/wharf.log" &
pids+=($!)
wait_for "$WHARF_URL/readyz" wharf

export SANDBOX_URL
DEMO=icfg_demoTeam000000000000000
if ! build/wharf-sandbox state | grep -q "\"$DEMO\""; then
  build/wharf-sandbox install --installationId "$DEMO" --team "Demo Team" >/dev/null ||
    echo "make run: installing the demo team failed; see '$SANDBOX_URL/_sandbox/inspector'" >&2
fi

cat <<MSG

  wharf          $WHARF_URL        (logs: $WHARF_DATA_DIR/wharf.log)
  wharf-sandbox  $SANDBOX_URL        (logs: $WHARF_DATA_DIR/sandbox.log)
  demo team      installation $DEMO

  Open the inspector:   $SANDBOX_URL/_sandbox/inspector
  Open in Provider (SSO into the dashboard, after a provision):
                        $SANDBOX_URL/_sandbox/sso?installationId=$DEMO

  Try (in another shell, from this directory):
    export SANDBOX_URL=$SANDBOX_URL
    build/wharf-sandbox plans --installationId $DEMO
    build/wharf-sandbox get-installation --installationId $DEMO
    build/wharf-sandbox provision --installationId $DEMO --productId sqlite-db \\
        --name demo-db --billingPlanId sqlite-free --metadata '{"durability":"full"}'
    build/wharf-sandbox repl --installationId $DEMO --resourceId <id from provision> \\
        --input 'select sqlite_version()'
    build/wharf-sandbox log           # every exchange, with conformance findings

  provision prints DATABASE_URL and DATABASE_TOKEN; query the database directly with
    curl -s <DATABASE_URL>/query -H 'Authorization: Bearer <DATABASE_TOKEN>' \
        -H 'Content-Type: application/json' -d '{"sql": "select 1"}'

  Ctrl-C stops both.
MSG
wait -n "${pids[@]}"
