# The two commands of the README: `make demo` and `make test`. Both install what is
# missing (Debian packages), build with the release preset and go.
PRESET ?= release
BUILD  := build/$(PRESET)
JOBS   ?= 2

.PHONY: deps build test test-unit test-e2e demo bench clean

deps:
	scripts/deps.sh

build: deps
	cmake --preset $(PRESET) >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

# Unit, deploy and browser tests in parallel, then the multi-process e2e tests alone.
test: build
	scripts/deps.sh --with-browser
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -LE e2e
	cd $(BUILD) && ctest --output-on-failure -L e2e

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -LE e2e

test-e2e: build
	cd $(BUILD) && ctest --output-on-failure -L e2e

demo: build
	$(BUILD)/bin/immunizer up --demo

bench: build
	bench/run_all.sh $(BUILD)

clean:
	rm -rf build
