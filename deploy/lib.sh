# Shared by the deploy/install-*.sh scripts (sourced, not run).
#
# apt_install [--simulate] PKG...: installs Debian packages without recommends. With --simulate
# nothing is installed: apt resolves the packages as a fresh debian:bookworm image would (an
# empty dpkg status and only the machine's Debian sources), so CI proves on any Debian 12 host
# that every name exists and the set installs, whatever that host already has.

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "$*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    local simulate=0
    if [ "${1:-}" = --simulate ]; then simulate=1; shift; fi
    if [ "$simulate" = 1 ]; then
        local t rc=0
        t=$(mktemp -d)
        mkdir -p "$t/parts"
        : > "$t/status"
        # Debian's sources only (deb822 or one-line), as in the image.
        for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] && grep -q 'debian' "$f" && cp "$f" "$t/parts/"
        done
        local list=/dev/null
        [ -f /etc/apt/sources.list ] && grep -q '^deb ' /etc/apt/sources.list && list=/etc/apt/sources.list
        if ! ls /var/lib/apt/lists/*Packages* >/dev/null 2>&1; then
            as_root apt-get update -q >&2 || die "apt-get update failed"
        fi
        apt-get -s -o Debug::NoLocking=1 -o Dir::State::status="$t/status" \
            -o Dir::Etc::SourceList="$list" -o Dir::Etc::SourceParts="$t/parts" \
            install --no-install-recommends "$@" > "$t/out" 2>&1 || rc=$?
        if [ "$rc" != 0 ] || grep -q '^E:' "$t/out"; then
            cat "$t/out" >&2
            rm -rf "$t"
            die "apt-get -s install failed for: $*"
        fi
        local p
        for p in "$@"; do
            grep -q "^Inst $p " "$t/out" || { cat "$t/out" >&2; rm -rf "$t"; die "simulation does not install $p"; }
        done
        log "simulated on a fresh bookworm: $# packages resolve ($(grep -c '^Inst ' "$t/out") to install in all)"
        rm -rf "$t"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends "$@"
}

load_versions() {
    local here
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    # shellcheck source=versions.env
    . "$here/versions.env"
    [ -n "${SERENA_VERSION:-}" ] && [ -n "${PYRIGHT_VERSION:-}" ] || die "versions.env lacks a pin"
}
