#!/usr/bin/env bash
# `make test`: every build and every test, in the order that fails fastest.
#
#   1. lint            clang-format and banned functions
#   2. build (gcc)     build/: the binary, core.wasm, unit tests, vectors
#   3. build (clang)   build-clang/: the same sources under clang -Werror
#   4. unit + vectors  ctest in build/ (native core, core.wasm through Node)
#   5. sanitizers      build-asan/: unit tests and vectors under ASan+UBSan
#   6. fuzz            build-fuzz/: each libFuzzer harness for SR_FUZZ_SECONDS
#   7. system          pytest tests/system: real peers and clients on 127.0.0.1, then the
#                      edge, instance, lifecycle and session suites (without Serena) again
#                      against the ASan+UBSan gateway
#   8. container       the real image: deploy/Dockerfile.cloudflare built with podman from a
#                      debootstrapped base (cached in /var/cache/serena-remote), run and tested
#                      (tests/system/test_container.py); skipped, saying why, where podman cannot run
#   9. worker          wrangler --dry-run, vectors in workerd, Worker -> serena-remote run e2e,
#                      Worker -> the real image (podman), refused configurations
#  10. deploy          the container image's install steps, proven on this machine
#
# `scripts/test.sh fuzz` runs only step 6. SR_FUZZ_SECONDS (default 20) bounds each harness.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${SR_FUZZ_SECONDS:-20}
CLANG=$(command -v clang-14 || command -v clang)

step() { printf '\n==== %s\n' "$*"; }

fuzz() {
    step "fuzz (${FUZZ_SECONDS}s per harness)"
    CC=$CLANG cmake -S . -B build-fuzz -G Ninja -DSR_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build-fuzz
    mkdir -p fuzz/artifacts
    for h in build-fuzz/fuzz_*; do
        [ -x "$h" ] || continue
        name=$(basename "$h"); corpus=fuzz/corpus/${name#fuzz_}
        mkdir -p "$corpus"
        work=$(mktemp -d)
        echo "-- $name"
        "$h" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix=fuzz/artifacts/ "$work" "$corpus" 2>&1 | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|crash-|leak-|timeout-' || true
        rm -rf "$work"
        if ls fuzz/artifacts/crash-* fuzz/artifacts/leak-* fuzz/artifacts/timeout-* >/dev/null 2>&1; then
            echo "fuzz: $name found a failing input (see fuzz/artifacts/)"; exit 1
        fi
    done
}

if [ "${1:-}" = fuzz ]; then fuzz; exit 0; fi

step "lint"
scripts/lint.sh

step "build (gcc)"
cmake -S . -B build -G Ninja >/dev/null
cmake --build build

step "build (clang -Werror)"
CC=$CLANG cmake -S . -B build-clang -G Ninja -DSR_WASM=OFF >/dev/null
cmake --build build-clang

step "unit tests and shared vectors (native and core.wasm)"
ctest --test-dir build -L 'unit|wasm' --output-on-failure

step "unit tests under ASan+UBSan"
CC=$CLANG cmake -S . -B build-asan -G Ninja -DSR_SANITIZE=ON -DSR_WASM=OFF >/dev/null
cmake --build build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan -L unit --output-on-failure

fuzz

step "system tests (real peers on 127.0.0.1)"
.venv/bin/python -m pytest tests/system -q -p no:cacheprovider --ignore=tests/system/test_container.py

step "system tests of the edge and instances with the ASan+UBSan gateway"
SR_BIN="$PWD/build-asan/serena-remote" \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    .venv/bin/python -m pytest tests/system/test_gateway.py tests/system/test_instances.py \
    tests/system/test_lifecycle.py tests/system/test_continuity.py -m "not serena" \
    -q -p no:cacheprovider

step "container image: podman build of deploy/Dockerfile.cloudflare; /health, Serena, three language servers, snapshots, strict mode"
# -s: the image's size and the cold start are printed (never asserted); -rs: why it was skipped.
.venv/bin/python -m pytest tests/system/test_container.py -q -s -rs -p no:cacheprovider

step "Cloudflare Worker: wrangler dry-run, vectors in workerd, e2e to serena-remote run and to the image"
(cd worker && npm ci --no-audit --no-fund --loglevel=error && npm test)

step "container image: every package and pin of deploy/Dockerfile.cloudflare installs"
bash deploy/check.sh

step "all tests passed"
