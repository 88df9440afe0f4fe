#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz (see tests/fuzz/README.md).
#
#   scripts/fuzz.sh [target ...]        # default: every target
#
# Environment:
#   FUZZ_BUILD_DIR   the clang build with WHARF_FUZZ=ON (default build-san; `make fuzz`
#                    configures and builds it)
#   FUZZ_SECONDS     fuzzing time per target (default 300; CI runs 20)
#   FUZZ_TIMEOUT     seconds one input may take before it counts as a hang (default 10)
#   FUZZ_RSS_MB      memory limit of a fuzzing process (default 2048)
#
# For each target: first the committed inputs (seed corpus and tests/fuzz/regressions/<target>)
# are replayed once; then the target fuzzes for FUZZ_SECONDS on a working corpus in
# $FUZZ_BUILD_DIR/fuzz/<target>/corpus, which starts as a copy of the seeds (the committed
# seeds are never written to) and grows across local runs. Every crash, leak, timeout or
# out-of-memory input found is copied to tests/fuzz/regressions/<target>/ — commit it once
# the bug is fixed, and ctest/CI replay it from then on. Exits non-zero if any target failed.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${FUZZ_BUILD_DIR:-build-san}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-300}
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS_MB=${FUZZ_RSS_MB:-2048}
FUZZ_DIR=tests/fuzz

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for src in "$FUZZ_DIR"/*.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi

failed=()
for t in "${targets[@]}"; do
  bin="$BUILD_DIR/tests/fuzz/fuzz_$t"
  if [ ! -x "$bin" ]; then
    echo "fuzz: $bin is missing (make fuzz builds it)" >&2
    exit 2
  fi
  work="$BUILD_DIR/fuzz/$t"
  mkdir -p "$work/corpus" "$work/artifacts"
  rm -f "$work/artifacts"/*
  dict=()
  if [ -f "$FUZZ_DIR/$t.dict" ]; then dict=(-dict="$FUZZ_DIR/$t.dict"); fi

  # 1. Replay: the committed seeds and regressions must all pass.
  replay=("$FUZZ_DIR/corpus/$t")
  if [ -d "$FUZZ_DIR/regressions/$t" ]; then replay+=("$FUZZ_DIR/regressions/$t"); fi
  if ! "$bin" -runs=0 -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
      -artifact_prefix="$work/artifacts/replay-" "${replay[@]}" >"$work/replay.log" 2>&1; then
    echo "fuzz: $t: a committed input fails (seeds or regressions); see $work/replay.log:" >&2
    tail -n 40 "$work/replay.log" >&2
    failed+=("$t (replay)")
    continue
  fi

  # 2. Fuzz.
  cp -n "$FUZZ_DIR/corpus/$t"/* "$work/corpus/" 2>/dev/null || true
  start=$(date +%s)
  status=0
  "$bin" -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
    -artifact_prefix="$work/artifacts/" -print_final_stats=1 "${dict[@]}" "$work/corpus" \
    >"$work/fuzz.log" 2>&1 || status=$?
  elapsed=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$work/fuzz.log" | tail -n 1 || true)
  units=$(find "$work/corpus" -type f | wc -l)

  found=()
  for a in "$work/artifacts"/crash-* "$work/artifacts"/leak-* "$work/artifacts"/timeout-* \
           "$work/artifacts"/oom-*; do
    [ -e "$a" ] || continue
    mkdir -p "$FUZZ_DIR/regressions/$t"
    cp "$a" "$FUZZ_DIR/regressions/$t/"
    found+=("$FUZZ_DIR/regressions/$t/$(basename "$a")")
  done
  if [ $status -ne 0 ] || [ ${#found[@]} -gt 0 ]; then
    echo "fuzz: $t: FAILED after ${elapsed}s (exit $status); log $work/fuzz.log" >&2
    grep -m1 -A 40 -E '^==[0-9]+==ERROR|runtime error:|^==[0-9]+== ERROR|deadly signal|Timeout|out-of-memory' \
      "$work/fuzz.log" >&2 || tail -n 40 "$work/fuzz.log" >&2
    for a in "${found[@]}"; do echo "fuzz: $t: reproducer saved as $a" >&2; done
    failed+=("$t")
  else
    echo "fuzz: $t: ok, ${elapsed}s, ${execs:-?} inputs, ${cov:-cov: ?}, corpus $units"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed"
