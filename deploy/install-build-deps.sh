#!/usr/bin/env bash
# Build stage of deploy/Dockerfile.cloudflare: the Debian bookworm packages that build
# serena-remote with CMake (gcc, libevent, OpenSSL, libcurl, libarchive, zstd; cmocka because the
# CMake configuration always declares the unit tests) and Node with npm, which only installs
# pyright (deploy/install-pyright.sh) for the runtime image to copy.
#
#   deploy/install-build-deps.sh             install (as root; the Dockerfile runs it)
#   deploy/install-build-deps.sh --simulate  resolve the same set as a fresh bookworm would (CI)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PKGS=(ca-certificates cmake ninja-build pkg-config gcc libc6-dev
      libssl-dev libevent-dev libcurl4-openssl-dev libarchive-dev libzstd-dev libcmocka-dev
      nodejs npm)

apt_install "$@" "${PKGS[@]}"
