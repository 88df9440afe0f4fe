#!/usr/bin/env bash
# Installs every build/test dependency from Debian packages. Idempotent: does nothing
# (and needs no network) when everything is already present.
set -euo pipefail

# libclang-rt-14-dev: clang's sanitizer and libFuzzer runtimes (make asan-test, tsan-test, fuzz).
PKGS=(
  build-essential cmake clang clang-format libclang-rt-14-dev pkg-config
  libboost-dev libssl-dev openssl libsqlite3-dev sqlite3 libcurl4-openssl-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev
  python3 python3-pytest python3-pytest-xdist python3-cryptography python3-requests
  wrk curl procps chromium nodejs
  postgresql libpq-dev libre2-dev
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# The tests' npm packages, each pinned by its package-lock.json and installed into its own
# node_modules: playwright-core (tests/browser; it drives the Debian chromium above), and the
# clients users connect with, @libsql/client and drizzle-orm (tests/clients).
npm_deps() {
  local root dir marker
  root="$(cd "$(dirname "$0")/.." && pwd)/tests"
  for pair in "browser:playwright-core" "clients:@libsql/client" "clients:drizzle-orm" \
      "clients:@openfeature/ofrep-provider"; do
    dir="$root/${pair%%:*}"
    marker="$dir/node_modules/${pair#*:}/package.json"
    if [ ! -f "$marker" ]; then
      echo "install-deps: npm ci in tests/${pair%%:*}" >&2
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  done
}

if [ ${#missing[@]} -eq 0 ]; then
  if ! command -v npm >/dev/null; then missing+=(npm); else npm_deps; exit 0; fi
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v npm >/dev/null || $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
npm_deps
