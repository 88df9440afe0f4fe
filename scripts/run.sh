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
stop_pg() { :; }
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  stop_pg
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

# A local PostgreSQL under ./data for the `postgres` product, when the server package is
# installed (scripts/install-deps.sh installs it): created once, started again on later runs.
PG_DIR="$WHARF_DATA_DIR/postgres"
if [ -z "${WHARF_POSTGRES_URL:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ ! -f "$PG_DIR/admin-url" ]; then
    rm -rf "$PG_DIR"
    scripts/pg-temp.sh start "$PG_DIR" >/dev/null 2>>"$WHARF_DATA_DIR/postgres.log" ||
      echo "make run: could not start PostgreSQL (see $WHARF_DATA_DIR/postgres.log)" >&2
  elif [ ! -f "$PG_DIR/data/postmaster.pid" ]; then
    scripts/pg-temp.sh restart "$PG_DIR" 2>>"$WHARF_DATA_DIR/postgres.log" ||
      echo "make run: could not restart PostgreSQL (see $WHARF_DATA_DIR/postgres.log)" >&2
  fi
  if [ -f "$PG_DIR/data/postmaster.pid" ]; then
    WHARF_POSTGRES_URL="$(scripts/pg-temp.sh url "$PG_DIR")"
    export WHARF_POSTGRES_URL
    stop_pg() { scripts/pg-temp.sh stop "$PG_DIR" || true; }
  fi
fi

# The example backend (examples/backend, an `http` product) next to the built-in products:
# the catalog served is the built-in one plus its entry, unless WHARF_CATALOG is set.
BACKEND_PORT="${BACKEND_PORT:-7000}"
BACKEND_SECRET_FILE="$SANDBOX_DIR/backend-secret"
if [ ! -s "$BACKEND_SECRET_FILE" ]; then
  (umask 077 && head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "$BACKEND_SECRET_FILE")
fi
export ACME_BACKEND_SECRET="$(cat "$BACKEND_SECRET_FILE")"
if [ -z "${WHARF_CATALOG:-}" ]; then
  WHARF_CATALOG="$WHARF_DATA_DIR/catalog.json"
  INTEGRATION_CLIENT_ID="$CLIENT_ID" INTEGRATION_CLIENT_SECRET="$CLIENT_SECRET" \
    build/wharf catalog | python3 -c '
import json, sys
doc = json.load(sys.stdin)
entry = json.load(open(sys.argv[1]))
entry["products"][0]["backend"]["url"] = "http://127.0.0.1:%s/wharf/v1" % sys.argv[2]
doc["products"] += entry["products"]
doc["plans"] += entry["plans"]
json.dump(doc, sys.stdout, indent=2)' examples/backend/catalog-entry.json "$BACKEND_PORT" \
    > "$WHARF_CATALOG.tmp"
  mv "$WHARF_CATALOG.tmp" "$WHARF_CATALOG"
  export WHARF_CATALOG
fi
python3 examples/backend/server.py --port "$BACKEND_PORT" --wharf-url "$WHARF_URL" \
  --product-id acme-kv --state "$WHARF_DATA_DIR/backend-state.json" \
  >>"$WHARF_DATA_DIR/backend.log" 2>&1 &
pids+=($!)

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

PG_LINE="not installed (no postgres-db product)"
[ -n "${WHARF_POSTGRES_URL:-}" ] && PG_LINE="PostgreSQL for the postgres-db product (logs: $PG_DIR/server.log)"
cat <<MSG

  wharf          $WHARF_URL        (logs: $WHARF_DATA_DIR/wharf.log)
  wharf-sandbox  $SANDBOX_URL        (logs: $WHARF_DATA_DIR/sandbox.log)
  acme-kv backend http://127.0.0.1:$BACKEND_PORT  (an \`http\` product; logs: $WHARF_DATA_DIR/backend.log)
  postgres       $PG_LINE
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
    build/wharf-sandbox provision --installationId $DEMO --productId acme-kv \\
        --name demo-kv --billingPlanId kv-free --metadata '{}'
    build/wharf-sandbox provision --installationId $DEMO --productId postgres-db \\
        --name demo-pg --billingPlanId postgres-free --metadata '{}'
        # then: psql "<DATABASE_URL from the answer>" -c 'create table t (x int)'
    build/wharf-sandbox log           # every exchange, with conformance findings

  provision prints DATABASE_URL and DATABASE_TOKEN; query the database directly with
    curl -s <DATABASE_URL>/query -H 'Authorization: Bearer <DATABASE_TOKEN>' \
        -H 'Content-Type: application/json' -d '{"sql": "select 1"}'

  Ctrl-C stops them all.
MSG
wait -n "${pids[@]}"
