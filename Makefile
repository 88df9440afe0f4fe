# The two commands a developer needs: `make run` and `make test`. Everything else is a helper.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CXX_COMPILER ?=

.PHONY: deps build test unit-test integration-test browser-test run bench format clean

deps:
	@scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(if $(CXX_COMPILER),-DCMAKE_CXX_COMPILER=$(CXX_COMPILER))

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)

unit-test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

integration-test: build
	WHARF_BIN=$(abspath $(BUILD_DIR))/wharf SANDBOX_BIN=$(abspath $(BUILD_DIR))/wharf-sandbox /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration

# Headless Chromium (Debian's) driven by playwright-core from tests/browser/node_modules;
# screenshots land in $(BUILD_DIR)/artifacts/browser.
browser-test: build
	cd tests/browser && WHARF_BIN=$(abspath $(BUILD_DIR))/wharf SANDBOX_BIN=$(abspath $(BUILD_DIR))/wharf-sandbox ARTIFACTS_DIR=$(abspath $(BUILD_DIR))/artifacts/browser node --test --test-concurrency=1 *.test.mjs

test: unit-test integration-test browser-test

run: build
	@scripts/run.sh

bench: build
	bench/run.sh

format:
	clang-format -i $$(git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h')

clean:
	rm -rf $(BUILD_DIR)
