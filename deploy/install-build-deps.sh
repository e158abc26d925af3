#!/usr/bin/env bash
# Build stages of deploy/Dockerfile.cloudflare: the Debian bookworm packages each one needs.
# None of them reaches the runtime image (it copies only the results).
#
#   c      gcc, CMake, Ninja and the -dev packages that build serena-remote (libevent, OpenSSL,
#          libcurl, libarchive, zstd); the unit tests are not configured (-DSR_TESTS=OFF)
#   node   Node and npm, which install pyright, typescript and typescript-language-server
#   go     Debian's Go toolchain, which builds gopls from the Go module proxy
#
#   deploy/install-build-deps.sh [--simulate] [c|node|go]...   (default: all three)
#     --simulate  resolve the same set as a fresh bookworm would instead of installing (CI)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIM=()
SETS=()
for a in "$@"; do
    case $a in
        --simulate) SIM=(--simulate) ;;
        c|node|go) SETS+=("$a") ;;
        *) die "unknown argument $a" ;;
    esac
done
[ "${#SETS[@]}" -gt 0 ] || SETS=(c node go)

PKGS=(ca-certificates)
for s in "${SETS[@]}"; do
    case $s in
        c) PKGS+=(cmake ninja-build pkg-config gcc libc6-dev binutils
                  libssl-dev libevent-dev libcurl4-openssl-dev libarchive-dev libzstd-dev) ;;
        node) PKGS+=(nodejs npm) ;;
        go) PKGS+=(golang-go) ;;
    esac
done

apt_install "${SIM[@]}" "${PKGS[@]}"
