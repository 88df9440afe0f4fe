# The two commands a developer needs: `make run` and `make test`. Everything else is a helper.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CXX_COMPILER ?=

.PHONY: deps build test unit-test integration-test browser-test run bench format clean \
	asan-build asan-test tsan-build tsan-test fuzz fuzz-ci

deps:
	@scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(if $(CXX_COMPILER),-DCMAKE_CXX_COMPILER=$(CXX_COMPILER))

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)

unit-test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# The integration files run on PYTEST_JOBS workers (pytest-xdist), a file per worker at a time
# (module fixtures stay whole): most of a test's time is waiting on servers, so two workers
# halve the suite on two cores. PYTEST_JOBS=0 runs it in one process.
PYTEST_JOBS ?= 2
PYTEST_PAR = $(if $(filter 0,$(PYTEST_JOBS)),,-n $(PYTEST_JOBS) --dist loadfile)
export PYTEST_PAR

integration-test: build
	WHARF_BIN=$(abspath $(BUILD_DIR))/wharf SANDBOX_BIN=$(abspath $(BUILD_DIR))/wharf-sandbox /usr/bin/python3 -m pytest -q -p no:cacheprovider $(PYTEST_PAR) tests/integration
	$(MAKE) integration-test-pg

# The integration files that exercise the store most, again with the state in PostgreSQL
# (WHARF_TEST_STATE=postgres: a throwaway cluster from scripts/pg-temp.sh, a database per
# wharf). PG_TESTS picks other files.
PG_TESTS ?= tests/integration/test_resources.py tests/integration/test_installations.py tests/integration/test_billing.py
.PHONY: integration-test-pg
integration-test-pg: build
	WHARF_TEST_STATE=postgres WHARF_BIN=$(abspath $(BUILD_DIR))/wharf SANDBOX_BIN=$(abspath $(BUILD_DIR))/wharf-sandbox /usr/bin/python3 -m pytest -q -p no:cacheprovider $(PYTEST_PAR) $(PG_TESTS)

# Headless Chromium (Debian's) driven by playwright-core from tests/browser/node_modules;
# screenshots land in $(BUILD_DIR)/artifacts/browser.
browser-test: build
	cd tests/browser && WHARF_BIN=$(abspath $(BUILD_DIR))/wharf SANDBOX_BIN=$(abspath $(BUILD_DIR))/wharf-sandbox ARTIFACTS_DIR=$(abspath $(BUILD_DIR))/artifacts/browser node --test --test-concurrency=1 *.test.mjs

# Crash consistency (tests/crash): wharf killed with SIGKILL at random points of a mixed
# workload and restarted on the same data dir, many times, checked after each restart.
# CRASH_SEED=<n> replays a run's schedule, CRASH_RUNS=<n> makes it longer (or shorter).
.PHONY: crash-test
crash-test: build
	WHARF_BIN=$(abspath $(BUILD_DIR))/wharf SANDBOX_BIN=$(abspath $(BUILD_DIR))/wharf-sandbox /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/crash

test: unit-test integration-test browser-test crash-test

# Sanitizers and fuzzing (README "Other targets", docs/decisions.md "CI: sanitizers and
# fuzzing"). One clang build serves the warning-free clang check, the ASan+UBSan suites and
# the libFuzzer targets; ThreadSanitizer has a build of its own (unit tests only).
SAN_BUILD_DIR ?= build-san
TSAN_BUILD_DIR ?= build-tsan
FUZZ_SECONDS ?= 300
FUZZ_CI_SECONDS ?= 5

$(SAN_BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(SAN_BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_CXX_COMPILER=clang++ \
	  -DWHARF_SANITIZE=address,undefined -DWHARF_FUZZ=ON

$(TSAN_BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(TSAN_BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_CXX_COMPILER=clang++ \
	  -DWHARF_SANITIZE=thread

asan-build: deps $(SAN_BUILD_DIR)/CMakeCache.txt
	cmake --build $(SAN_BUILD_DIR) -j $(JOBS)

# Unit tests (and a replay of the fuzz seeds and regressions) and the integration suite
# under ASan+UBSan; any sanitizer report fails it.
asan-test: asan-build
	scripts/sanitize-test.sh address $(SAN_BUILD_DIR) $(JOBS)

tsan-build: deps $(TSAN_BUILD_DIR)/CMakeCache.txt
	cmake --build $(TSAN_BUILD_DIR) -j $(JOBS) --target wharf_unit_tests

tsan-test: tsan-build
	scripts/sanitize-test.sh thread $(TSAN_BUILD_DIR) $(JOBS)

# Each fuzz target for FUZZ_SECONDS (crashes land in tests/fuzz/regressions/<target>/).
fuzz: asan-build
	FUZZ_BUILD_DIR=$(SAN_BUILD_DIR) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

fuzz-ci: asan-build
	FUZZ_BUILD_DIR=$(SAN_BUILD_DIR) FUZZ_SECONDS=$(FUZZ_CI_SECONDS) scripts/fuzz.sh

run: build
	@scripts/run.sh

bench: build
	bench/run.sh

format:
	clang-format -i $$(git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h')

clean:
	rm -rf $(BUILD_DIR)
