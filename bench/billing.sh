#!/usr/bin/env bash
# Billing pass benchmark: BillingService::run() over INSTALLATIONS × RESOURCES with DAYS of
# usage in a fresh store, against the bare-reads floor measured in the same process.
# See bench/README.md ("Billing pass"). Output: bench/out/billing.txt (table + JSON line),
# bench/out/billing.json (the JSON line), bench/out/billing.log (the service's log lines);
# with a PostgreSQL state the same in bench/out/billing-postgres.{txt,json,log}.
#
# Knobs (env): INSTALLATIONS (10000), RESOURCES (10), DAYS (15), BENCH_DIR (a fresh temp dir
#   under /tmp; SQLite only), BUILD_DIR (build),
#   STATE (sqlite): sqlite | postgres | both (sqlite, then postgres: both tables in one report).
#     postgres starts a throwaway cluster (scripts/pg-temp.sh) in a temp dir, creates the
#     database billing_bench and runs the bench on it (--state-url); the cluster is stopped
#     and removed on exit.
#   PG_DURABLE (1): 1 runs that cluster with fsync, synchronous_commit and full_page_writes on
#     (PostgreSQL's defaults: commits on disk, like SQLite's synchronous=FULL); 0 keeps
#     pg-temp.sh's test settings (all three off: not comparable with synchronous=FULL).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build}"
OUT="$ROOT/bench/out"
STATE="${STATE:-sqlite}"
PG_DURABLE="${PG_DURABLE:-1}"
case "$STATE" in
  sqlite | postgres | both) ;;
  *) echo "bench: STATE must be sqlite, postgres or both (got '$STATE')" >&2; exit 2 ;;
esac
case "$PG_DURABLE" in
  0 | 1) ;;
  *) echo "bench: PG_DURABLE must be 0 or 1 (got '$PG_DURABLE')" >&2; exit 2 ;;
esac
mkdir -p "$OUT"

[ -f "$BUILD/CMakeCache.txt" ] || { echo "bench: $BUILD not configured (make build)" >&2; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target wharf-bench-billing >&2

ARGS=(--installations "${INSTALLATIONS:-10000}" --resources "${RESOURCES:-10}" --days "${DAYS:-15}")

run_sqlite() {
  local args=("${ARGS[@]}")
  [ -n "${BENCH_DIR:-}" ] && args+=(--dir "$BENCH_DIR")
  "$BUILD/wharf-bench-billing" "${args[@]}" 2>"$OUT/billing.log" | tee "$OUT/billing.txt"
  grep '^{' "$OUT/billing.txt" | tail -1 >"$OUT/billing.json"
}

PG_DIR=""
stop_pg() {
  if [ -n "$PG_DIR" ]; then
    "$ROOT/scripts/pg-temp.sh" stop "$PG_DIR" || true
    rm -rf "$PG_DIR"
    PG_DIR=""
  fi
}
trap stop_pg EXIT
trap 'exit 130' INT TERM  # through the EXIT trap: the cluster does not outlive us

run_postgres() {
  PG_DIR="$(mktemp -d /tmp/wharf-bench-billing-pg.XXXXXX)"
  local admin url
  admin="$(PG_DURABLE="$PG_DURABLE" "$ROOT/scripts/pg-temp.sh" start "$PG_DIR")"
  psql -X -q -v ON_ERROR_STOP=1 "$admin" -c 'CREATE DATABASE billing_bench'
  url="${admin%/postgres}/billing_bench"
  echo "bench: PostgreSQL cluster in $PG_DIR (PG_DURABLE=$PG_DURABLE)" >&2
  "$BUILD/wharf-bench-billing" "${ARGS[@]}" --state-url "$url" 2>"$OUT/billing-postgres.log" |
    tee "$OUT/billing-postgres.txt"
  grep '^{' "$OUT/billing-postgres.txt" | tail -1 >"$OUT/billing-postgres.json"
  stop_pg
}

case "$STATE" in
  sqlite) run_sqlite ;;
  postgres) run_postgres ;;
  both)
    echo "== SQLite state =="
    run_sqlite
    echo "== PostgreSQL state (PG_DURABLE=$PG_DURABLE) =="
    run_postgres
    ;;
esac
