#!/usr/bin/env bash
# Installs every build/test dependency from Debian packages. Idempotent: does nothing
# (and needs no network) when everything is already present.
set -euo pipefail

# libclang-rt-14-dev: clang's sanitizer and libFuzzer runtimes (make asan-test, tsan-test, fuzz).
PKGS=(
  build-essential cmake clang clang-format libclang-rt-14-dev pkg-config
  libboost-dev libssl-dev openssl libsqlite3-dev sqlite3 libcurl4-openssl-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev
  python3 python3-pytest python3-cryptography python3-requests
  wrk curl procps chromium nodejs
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# The browser tests' one npm package (playwright-core, pinned by tests/browser/package-lock.json),
# installed into tests/browser/node_modules; it drives the Debian chromium above.
browser_deps() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
  if [ ! -f "$dir/node_modules/playwright-core/package.json" ]; then
    echo "install-deps: npm ci in tests/browser" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  if ! command -v npm >/dev/null; then missing+=(npm); else browser_deps; exit 0; fi
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v npm >/dev/null || $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
browser_deps
