#!/usr/bin/env bash
# CI for deploy/ on a Debian 12 machine without a container engine: proves that every step of
# Dockerfile.cloudflare installs what it names. (Where podman runs, make test also builds and
# runs the real image: deploy/local-image.sh, tests/system/test_container.py.)
#
#   1. the pins in versions.env equal scripts/serena.sh's
#   2. install-build-deps.sh --simulate: the build stages' apt sets resolve on a fresh bookworm
#   3. install-runtime.sh --simulate: the runtime apt set resolves; Serena really installs in a venv
#   4. install-pyright.sh: pyright really installs (npm) and reports its pinned version
#   5. the build stage: the Docker context (as the root .dockerignore admits it) configures and builds
#      serena-remote with the Dockerfile's CMake command
#   6. every shared library that binary needs comes from a package of the runtime set
#   7. the Dockerfile COPYs existing scripts, runs `serena-remote run` as PID 1, not as root
#
# Usage: bash deploy/check.sh   (about 1-2 minutes; network: Debian and PyPI/npm registries)
# Output ends with "deploy: N passed, N failed"; exit 0 only when all passed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/sr-deploy-check.XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0
fail=0

step() { # step NAME COMMAND...: runs COMMAND with its output in a log, shown on failure
    local name=$1; shift
    if "$@" > "$T/step.log" 2>&1; then
        pass=$((pass + 1)); echo "ok - $name"
    else
        fail=$((fail + 1)); echo "not ok - $name"; sed 's/^/    /' "$T/step.log" | tail -40
    fi
}

pins() {
    . "$HERE/versions.env"
    local s p
    s=$(sed -n 's/^SERENA_VERSION=//p' "$ROOT/scripts/serena.sh")
    p=$(sed -n 's/^PYRIGHT_VERSION=//p' "$ROOT/scripts/serena.sh")
    echo "deploy: serena $SERENA_VERSION pyright $PYRIGHT_VERSION; scripts/serena.sh: serena $s pyright $p"
    [ "$s" = "$SERENA_VERSION" ] && [ "$p" = "$PYRIGHT_VERSION" ]
}

build_stage() {
    mkdir -p "$T/ctx"
    # What the root .dockerignore admits and the build stage COPYs.
    tar -C "$ROOT" --exclude=__pycache__ -cf - CMakeLists.txt cmake src deploy/serena_config.template.yml \
        | tar -C "$T/ctx" -xf - || return 1
    local cmd
    cmd=$(grep -o 'cmake -S \. -B /build [^&]*' "$HERE/Dockerfile.cloudflare") || { echo "no cmake line in the Dockerfile"; return 1; }
    cmd=${cmd//\/build/$T/build}
    cmd=${cmd//-S ./-S $T/ctx}
    echo "+ $cmd"
    eval "$cmd" && cmake --build "$T/build" --target serena-remote serena-remote-snapshot \
        && "$T/build/serena-remote" version && "$T/build/serena-remote-snapshot" --version
}

libs_covered() {
    local name bad=0
    for name in serena-remote serena-remote-snapshot; do
        libs_covered_of "$name" || bad=1
    done
    return $bad
}

libs_covered_of() {
    local bin=$T/build/$1 pkgs lib path pkg bad=0 n=0
    [ -x "$bin" ] || bin=$ROOT/build/$1
    pkgs=" $("$HERE/install-runtime.sh" --print-packages | tr '\n' ' ') libc6 "
    while read -r lib path; do
        [ -n "$path" ] && [ -e "$path" ] || continue
        pkg=""
        local cand
        for cand in "$path" "$(readlink -f "$path")" "${path/#\/usr\/lib/\/lib}" "/usr${path}"; do
            pkg=$(dpkg -S "$cand" 2>/dev/null | head -1 | cut -d: -f1)
            [ -n "$pkg" ] && break
        done
        n=$((n + 1))
        if [ -n "$pkg" ] && [[ "$pkgs" == *" $pkg "* ]]; then echo "$lib <- $pkg"; else echo "$lib <- ${pkg:-?} NOT in the runtime set"; bad=1; fi
    done < <(ldd "$bin" | awk '$2 == "=>" {print $1, $3}' | grep -F -f <(readelf -d "$bin" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1 /p'))
    [ "$n" -gt 0 ] || { echo "no NEEDED library found in $bin"; return 1; }
    return $bad
}

dockerfile() {
    local f=$HERE/Dockerfile.cloudflare s
    for s in $(grep -o 'deploy/[A-Za-z0-9._-][A-Za-z0-9._-]*' "$f" | sort -u); do
        [ -f "$ROOT/$s" ] || { echo "the Dockerfile names $s, which does not exist"; return 1; }
    done
    grep -q '^FROM debian:bookworm AS build' "$f" && grep -q '^FROM debian:bookworm$' "$f" \
        && grep -q '^ENTRYPOINT \["/usr/local/bin/serena-remote", "run"\]' "$f" \
        && grep -q '^USER serena' "$f" \
        && grep -q 'SERENA_TOOLS_DIR=/opt/serena/tools' "$f" \
        && grep -q 'install-pyright.sh /opt/serena/tools' "$f" \
        && grep -q 'PATH=/opt/serena/venv/bin' "$f" \
        && grep -q 'install-runtime.sh --venv /opt/serena/venv' "$f"
}

step "pins equal scripts/serena.sh" pins
step "build stages' apt packages resolve (bookworm)" "$HERE/install-build-deps.sh" --simulate
step "runtime apt packages resolve; serena-agent installs in a venv" "$HERE/install-runtime.sh" --simulate --venv "$T/venv"
step "pyright installs with npm" "$HERE/install-pyright.sh" "$T/tools"
step "build stage: serena-remote builds from the Docker context" build_stage
step "runtime packages provide every shared library of both binaries" libs_covered
step "Dockerfile: scripts exist, serena-remote run is the non-root entrypoint" dockerfile

echo "deploy: $pass passed, $fail failed"
[ "$fail" = 0 ]
