# A thin layer over CMake. `make run` and `make test` are the two commands the
# README starts with; everything else is for developers.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CONFIG ?= examples/bindery.yaml

.PHONY: all run test build build-test build-memcheck memcheck bench replay fuzz lint format clean

all: build

build:
	@scripts/setup.sh run
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBINDERY_TESTS=OFF >/dev/null
	cmake --build build -j $(JOBS)

# Installs what is missing, builds, and starts bindery in embedded mode with
# the example config. It keeps running; Ctrl-C (SIGINT) or SIGTERM stops it.
run: build
	exec build/bin/bindery serve --config $(CONFIG)

build-test:
	@scripts/setup.sh test
	cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DBINDERY_SANITIZE=ON >/dev/null
	cmake --build build-test -j $(JOBS)

build-memcheck:
	@scripts/setup.sh test
	cmake -S . -B build-memcheck -DCMAKE_BUILD_TYPE=Debug -DBINDERY_VALGRIND=ON >/dev/null
	cmake --build build-memcheck -j $(JOBS)

memcheck: build-memcheck
	cd build-memcheck && ctest --output-on-failure -L memcheck -j $(JOBS)

# The whole suite: unit, black-box, format and corpus-replay tests under
# ASan+UBSan, then the unit tests again under valgrind memcheck.
test: build-test build-memcheck
	cd build-test && ctest --output-on-failure -j $(JOBS)
	cd build-memcheck && ctest --output-on-failure -L memcheck -j $(JOBS)

bench:
	@scripts/setup.sh bench
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBINDERY_TESTS=OFF >/dev/null
	cmake --build build -j $(JOBS)
	bench/run --build build

# Replays a synthetic demand trace through the forecaster and sizer and
# compares it with a tuned fixed buffer; prints a table, writes build/replay.png.
replay: build
	build/bin/bindery_replay --synthetic --plot build/replay.png

fuzz:
	@scripts/setup.sh test
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DBINDERY_FUZZ=ON -DBINDERY_TESTS=OFF >/dev/null
	cmake --build build-fuzz -j $(JOBS)
	scripts/fuzz.sh build-fuzz/bin $${FUZZ_SECONDS:-30}

lint: build-test
	scripts/check-format.sh
	scripts/check-tidy.sh build-test

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-test build-memcheck build-fuzz
