#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian 12 machine.
#
# Idempotent and fast on a second run: Debian packages are checked with dpkg-query (apt-get
# update and install run only when something is missing), and the npm tree and the Python venv
# carry stamp files holding the hash of the lock file they were installed from.
#
#   scripts/deps.sh            everything (build + test)
#   scripts/deps.sh build      only the Debian packages the C build needs
#
# Environment: SR_VENV (default <repo>/.venv), SR_DEPS_FORCE=1 (ignore stamps).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SYS="$ROOT/tests/system"
VENV=${SR_VENV:-$ROOT/.venv}
WHAT=${1:-all}

BUILD_PKGS=(cmake ninja-build pkg-config clang-14 lld-14 clang-format-14 libclang-rt-14-dev
            libssl-dev libevent-dev libcurl4-openssl-dev libarchive-dev libzstd-dev libcmocka-dev)
# prometheus (promtool and a real Prometheus scraping the admin listener) and chromium (the
# status page rendered headless) are peers of tests/system/test_admin.py.
# podman, runc, debootstrap, uidmap, slirp4netns: make test builds and runs the container image
# (deploy/local-image.sh, tests/system/test_container.py).
TEST_PKGS=(curl git nginx-light wrk bubblewrap zstd
           swift-proxy swift-object swift-container swift-account memcached
           prometheus chromium
           podman runc debootstrap uidmap slirp4netns)

log() { printf 'deps: %s\n' "$*" >&2; }

sudo_() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Another process (unattended-upgrades, a parallel install) may hold the dpkg lock for a while;
# apt waits on its own for DPkg::Lock::Timeout and the loop covers the rest.
apt_retry() {
    local i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        if sudo_ env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 "$@"; then
            return 0
        fi
        log "apt-get $1 failed (attempt $i), retrying in 5 s"
        sleep 5
    done
    log "apt-get $* kept failing; giving up"
    return 1
}

missing_pkgs() {
    local p st
    for p in "$@"; do
        st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [ "$st" = "install ok installed" ] || printf '%s\n' "$p"
    done
}

install_apt() {
    local want=("${BUILD_PKGS[@]}")
    if [ "$WHAT" != build ]; then
        want+=("${TEST_PKGS[@]}")
        # pyenv or Debian's python: Debian's needs python3-venv for "python3 -m venv".
        command -v python3 >/dev/null || want+=(python3)
        if command -v python3 >/dev/null && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
            want+=(python3-venv)
        fi
        # The machines ship Node 20 (nodesource); Debian's own is a fallback only.
        command -v node >/dev/null || want+=(nodejs)
        command -v npm >/dev/null || want+=(npm)
    fi
    local missing
    mapfile -t missing < <(missing_pkgs "${want[@]}")
    if [ "${#missing[@]}" = 0 ]; then
        log "Debian packages present"
        return 0
    fi
    local had_nginx=1 had_prometheus=1
    dpkg-query -W -f='${Status}' nginx-light 2>/dev/null | grep -q 'install ok installed' || had_nginx=0
    dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -q 'install ok installed' || had_prometheus=0
    log "installing: ${missing[*]}"
    apt_retry update -q
    apt_retry install -y -q --no-install-recommends "${missing[@]}"
    # The tests and the benchmark start nginx themselves on their own ports; a system nginx
    # left running by the package's postinst would hold port 80 and outlive the session.
    if [ "$had_nginx" = 0 ] && command -v nginx >/dev/null; then
        stop_system_nginx
    fi
    # The same for Prometheus: its postinst starts a server on port 9090 scraping itself; the
    # test starts its own on a free port.
    if [ "$had_prometheus" = 0 ] && command -v prometheus >/dev/null; then
        stop_system_prometheus
    fi
}

stop_system_prometheus() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        sudo_ systemctl disable --now prometheus >/dev/null 2>&1 || true
    else
        command -v update-rc.d >/dev/null && sudo_ update-rc.d prometheus disable >/dev/null 2>&1 || true
        sudo_ service prometheus stop >/dev/null 2>&1 || true
    fi
    log "system prometheus stopped and disabled (tests start their own)"
}

stop_system_nginx() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        sudo_ systemctl disable --now nginx >/dev/null 2>&1 || true
    else
        command -v update-rc.d >/dev/null && sudo_ update-rc.d nginx disable >/dev/null 2>&1 || true
        if [ -s /run/nginx.pid ]; then
            sudo_ nginx -s quit >/dev/null 2>&1 || sudo_ service nginx stop >/dev/null 2>&1 || true
        fi
    fi
    log "system nginx stopped and disabled (tests start their own)"
}

hash_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

install_npm() {
    local stamp="$SYS/node_modules/.sr-deps-stamp" want
    want=$(hash_of "$SYS/package.json" "$SYS/package-lock.json")$(node --version)
    if [ "${SR_DEPS_FORCE:-0}" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "npm peers present"
        return 0
    fi
    log "npm ci in tests/system"
    (cd "$SYS" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s' "$want" > "$stamp"
}

install_venv() {
    local req="$SYS/requirements.txt" stamp="$VENV/.sr-deps-stamp" want
    want=$(hash_of "$req")
    if [ "${SR_DEPS_FORCE:-0}" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import pytest, mcp' 2>/dev/null; then
        log "python venv present"
        return 0
    fi
    [ -x "$VENV/bin/python" ] || { log "creating venv $VENV"; python3 -m venv "$VENV"; }
    log "pip install -r tests/system/requirements.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    printf '%s' "$want" > "$stamp"
}

install_apt
if [ "$WHAT" != build ]; then
    install_npm
    install_venv
fi
log "done"
