#!/usr/bin/env bash
# Runs the test suites on a sanitizer build (`make asan-test`, `make tsan-test`) and fails on
# any sanitizer report, including ones from processes whose exit status nobody checks (the
# wharf and wharf-sandbox servers the integration tests start and stop).
#
#   scripts/sanitize-test.sh address BUILD_DIR [JOBS]   # ASan+UBSan: ctest (unit tests and
#                                                       # the fuzz replays) + integration suite
#   scripts/sanitize-test.sh thread BUILD_DIR [JOBS]    # TSan: ctest (unit tests)
#
# Every process writes its reports to BUILD_DIR/sanitizer-reports/<kind>.<pid>; they are
# printed at the end. Suppressions (third-party code only) are in tests/sanitizers/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

kind=${1:?usage: sanitize-test.sh address|thread BUILD_DIR [JOBS]}
build=$(cd "${2:?build dir}" && pwd)
jobs=${3:-$(nproc)}
reports="$build/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"

case "$kind" in
  address)
    export ASAN_OPTIONS="detect_leaks=1:log_path=$reports/asan"
    export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"
    ;;
  thread)
    # halt_on_error=0: report every race of the run, not just the first (the process still
    # exits non-zero, so its test fails).
    export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:log_path=$reports/tsan:suppressions=$root/tests/sanitizers/tsan.supp"
    ;;
  *)
    echo "sanitize-test: unknown kind '$kind' (address or thread)" >&2
    exit 2
    ;;
esac

status=0
t0=$(date +%s)
(cd "$build" && ctest --output-on-failure -j "$jobs") || status=1
t1=$(date +%s)
echo "sanitize-test: $kind: ctest took $((t1 - t0)) s"

if [ "$kind" = address ]; then
  # Latency bounds in the integration tests (test_hardening) scale with the sanitizer's cost.
  WHARF_TEST_TIME_SCALE=5 WHARF_BIN="$build/wharf" SANDBOX_BIN="$build/wharf-sandbox" \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider ${PYTEST_PAR:-} tests/integration || status=1
  echo "sanitize-test: $kind: integration suite took $(($(date +%s) - t1)) s"
fi

shopt -s nullglob
found=("$reports"/*)
if [ ${#found[@]} -gt 0 ]; then
  echo "sanitize-test: $kind: ${#found[@]} sanitizer report(s):" >&2
  for f in "${found[@]}"; do
    echo "---- $f" >&2
    head -n 120 "$f" >&2
  done
  status=1
fi
if [ $status -eq 0 ]; then echo "sanitize-test: $kind: no failures, no sanitizer reports"; fi
exit $status
