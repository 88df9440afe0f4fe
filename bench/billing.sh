#!/usr/bin/env bash
# Billing pass benchmark: BillingService::run() over INSTALLATIONS × RESOURCES with DAYS of
# usage in a fresh SQLite store, against the bare-reads floor measured in the same process.
# See bench/README.md ("Billing pass"). Output: bench/out/billing.txt (table + JSON line),
# bench/out/billing.json (the JSON line), bench/out/billing.log (the service's log lines).
#
# Knobs (env): INSTALLATIONS (10000), RESOURCES (10), DAYS (15), BENCH_DIR (a fresh temp dir
#   under /tmp), BUILD_DIR (build).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build}"
OUT="$ROOT/bench/out"
mkdir -p "$OUT"

[ -f "$BUILD/CMakeCache.txt" ] || { echo "bench: $BUILD not configured (make build)" >&2; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target wharf-bench-billing >&2

ARGS=(--installations "${INSTALLATIONS:-10000}" --resources "${RESOURCES:-10}" --days "${DAYS:-15}")
[ -n "${BENCH_DIR:-}" ] && ARGS+=(--dir "$BENCH_DIR")

"$BUILD/wharf-bench-billing" "${ARGS[@]}" 2>"$OUT/billing.log" | tee "$OUT/billing.txt"
grep '^{' "$OUT/billing.txt" | tail -1 >"$OUT/billing.json"
