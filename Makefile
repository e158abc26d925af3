# serena-remote: the two commands are `make run` and `make test`.
# Everything else is a step of those two; see scripts/ for what each does.

.PHONY: all run test build deps deps-build unit system fuzz lint bench clean

all: build

# Installs what is missing (Debian packages, npm peers, the Python venv).
deps:
	scripts/deps.sh

deps-build:
	scripts/deps.sh build

build: deps-build
	cmake -S . -B build -G Ninja
	cmake --build build

# Builds, then starts the gateway with embedded defaults (see README).
run: build
	scripts/run.sh

# Installs test dependencies, builds (gcc, clang, ASan+UBSan, libFuzzer) and runs every test.
test: deps
	scripts/test.sh

unit: build
	ctest --test-dir build -L 'unit|wasm' --output-on-failure

system: build
	.venv/bin/python -m pytest tests/system -q

fuzz:
	scripts/test.sh fuzz

lint:
	scripts/lint.sh

bench: build
	bench/run.sh

clean:
	rm -rf build build-clang build-asan build-fuzz
