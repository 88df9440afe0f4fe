#!/usr/bin/env bash
# `make run`: starts Wharf on the embedded default (SQLite state under ./data, built-in
# catalog). With INTEGRATION_CLIENT_ID and INTEGRATION_CLIENT_SECRET set, it runs against
# real Vercel (tokens verified with Vercel's JWKS, Vercel API at api.vercel.com).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${INTEGRATION_CLIENT_ID:-}" ] || [ -z "${INTEGRATION_CLIENT_SECRET:-}" ]; then
  cat >&2 <<'MSG'
wharf: INTEGRATION_CLIENT_ID and INTEGRATION_CLIENT_SECRET are not set.

To run against Vercel, export the client id (oac_…) and secret of your integration from the
Vercel Integration Console, then `make run` again. The local marketplace sandbox
(wharf-sandbox), which plays Vercel's part on this machine, is not built yet.
MSG
  exit 2
fi

export WHARF_DATA_DIR="${WHARF_DATA_DIR:-./data}"
exec build/wharf serve
