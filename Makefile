# The two commands of the README: `make demo` and `make test`. Both install what is
# missing (Debian packages), build with the release preset and go.
PRESET ?= release
BUILD  := build/$(PRESET)
JOBS   ?= 2

.PHONY: deps build test test-unit test-e2e test-asan test-asan-unit test-asan-e2e test-asan-unit-gcc fuzz fuzz-build fuzz-smoke demo bench clean format format-check lint lint-changed
# `make fuzz`: seconds per fuzz target; `make fuzz-smoke` (part of `make test`) runs each for
# FUZZ_SMOKE_SECONDS.
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 10
# Sanitizer findings fail the run (the asan preset also compiles UBSan as non-recovering).
SANITIZER_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

deps:
	scripts/deps.sh

build: deps
	cmake --preset $(PRESET) >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

# Unit, deploy and browser tests in parallel, then the multi-process e2e tests alone, lint, a
# smoke of every fuzz target, then the unit tests again under ASan + UBSan on the fuzz build's
# sanitized libraries (docs/testing.md, "Fuzzing" and "Sanitizers": what each costs on CI's
# 2 cores).
test: build format-check
	scripts/deps.sh --with-browser
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -LE e2e
	cd $(BUILD) && ctest --output-on-failure -L e2e
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory fuzz-smoke
	$(MAKE) --no-print-directory test-asan-unit

# A short run of every fuzz target (ASan + UBSan, seeds from CSIC 2010, fuzz/regressions/
# replayed first); fails on any finding.
fuzz-smoke: fuzz-build
	fuzz/run.sh build/fuzz $(FUZZ_SMOKE_SECONDS)

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -LE e2e

test-e2e: build
	cd $(BUILD) && ctest --output-on-failure -L e2e

# Unit and e2e tests built with the asan preset (GCC, ASan + UBSan).
test-asan: deps
	cmake --preset asan >/dev/null
	cmake --build build/asan -j$(JOBS)
	cd build/asan && $(SANITIZER_ENV) ctest --output-on-failure -j$(JOBS) -LE e2e
	cd build/asan && $(SANITIZER_ENV) ctest --output-on-failure -L e2e

# The unit tests under ASan + UBSan (clang-14), built in the fuzz build: its libraries are
# already compiled with the sanitizers for the fuzz smoke, so only the unit_tests target's own
# sources (the tests, the CLI and execute for `config check`, the C examples) are compiled on
# top; the tests link -fsanitize=address,undefined, not libFuzzer. The --version checks are
# left out (they start every binary, which unit_tests does not build). Part of `make test`,
# after fuzz-smoke (whose build it reuses).
test-asan-unit: fuzz-build
	cmake --build build/fuzz -j$(JOBS) --target unit_tests
	cd build/fuzz && $(SANITIZER_ENV) ctest --output-on-failure -j$(JOBS) -L '^unit$$' -E '^version_flag_'

# The multi-process e2e tests with every service built in the fuzz build (clang-14, ASan +
# UBSan): the services run sanitized, a report aborts the service and fails its test. Not in
# `make test` (docs/testing.md, "Sanitizers": what it costs).
test-asan-e2e: fuzz-build
	cmake --build build/fuzz -j$(JOBS) --target e2e_loop_test e2e_up_stop_test e2e_crash_test e2e_broker_fault_test immunizer forge_plan
	cd build/fuzz && $(SANITIZER_ENV) ctest --output-on-failure -R '^(eval_csic_small|e2e_loop_test|e2e_up_stop_test|e2e_crash_test|e2e_broker_fault_test|control_plane_attacks)$$'

# The same with GCC's sanitizers (the asan preset): a build of its own, every library included.
test-asan-unit-gcc: deps
	cmake --preset asan >/dev/null
	cmake --build build/asan -j$(JOBS) --target unit_tests
	cd build/asan && $(SANITIZER_ENV) ctest --output-on-failure -j$(JOBS) -L '^unit$$' -E '^version_flag_'

# libFuzzer targets (fuzz/, clang-14, ASan + UBSan), a build of their own.
fuzz-build: deps
	cmake --preset fuzz >/dev/null
	cmake --build build/fuzz -j$(JOBS) --target fuzz_all

fuzz: fuzz-build
	fuzz/run.sh build/fuzz $(FUZZ_SECONDS)

demo: build
	$(BUILD)/bin/immunizer up --demo

bench: build
	bench/run_all.sh $(BUILD)

# .clang-format over every tracked C/C++ file; format-check is part of `make test`.
format: deps
	scripts/format.sh

format-check: deps
	scripts/format.sh --check

# clang-tidy-14 (.clang-tidy) over every production source of the build (scripts/lint.sh);
# lint-changed: only the sources changed since the branch left main (on main: its last
# commit). Sources found clean are cached under build/$(PRESET)/lint-cache by the hash of their
# preprocessed text. Part of `make test`: a full run costs about 22 CPU minutes (docs/testing.md, "Lint").
lint: build
	JOBS=$(JOBS) PRESET=$(PRESET) scripts/lint.sh

lint-changed: build
	JOBS=$(JOBS) PRESET=$(PRESET) scripts/lint.sh --changed

clean:
	rm -rf build
