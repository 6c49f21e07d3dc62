# The two commands of the README, and the steps they are made of. Everything real is in CMake;
# this file only chains set-up, configure, build and run so that one word does it all.
BUILD ?= build
BUILD_ASAN ?= build-asan
JOBS ?= $(shell nproc)
DATA ?= kbgap-data

.PHONY: run test setup build build-asan test-asan format format-check bench clean

run: build
	./$(BUILD)/kbgap --data $(DATA) catalog stats

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: setup
	@cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKBGAP_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)

test-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(BUILD_ASAN) --output-on-failure -j $(JOBS)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.cpp' '*.h')

bench: build
	bash bench/import_bench.sh $(BUILD)/kbgap

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
