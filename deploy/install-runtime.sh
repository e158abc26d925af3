#!/usr/bin/env bash
# Runtime stage of deploy/Dockerfile.cloudflare: the shared libraries serena-remote links
# against, Python 3.11 with venv (Debian bookworm's python3), Node 18 for pyright and
# typescript-language-server, CA certificates for R2 over HTTPS, and Serena (serena-agent,
# pinned) in a venv. (The `go` command gopls needs comes from the go-tools build stage, trimmed:
# install-language-servers.sh goroot.)
#
#   deploy/install-runtime.sh [--simulate] [--venv DIR]
#     --simulate   resolve the Debian packages as a fresh bookworm would instead of installing
#                  them (CI); the venv is still really installed, into DIR
#     --venv DIR   where Serena goes (default /opt/serena/venv; its bin/ holds `serena`)
#     --print-packages   list the Debian packages and exit
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
load_versions

SIMULATE=()
PRINT=0
VENV=/opt/serena/venv
while [ $# -gt 0 ]; do
    case $1 in
        --simulate) SIMULATE=(--simulate) ;;
        --venv) VENV=${2:?--venv needs a directory}; shift ;;
        --print-packages) PRINT=1 ;;
        *) die "unknown argument $1" ;;
    esac
    shift
done

# Keep in step with the binary's NEEDED libraries: deploy/check.sh maps each one (ldd) to a
# package of this list.
LIBS=(libevent-2.1-7 libevent-core-2.1-7 libevent-openssl-2.1-7 libssl3 libcurl4 libarchive13 libzstd1)
# git (and ssh for ssh:// URLs): a token's project may be a repository, cloned into its workspace.
PKGS=(ca-certificates python3 python3-venv nodejs git openssh-client "${LIBS[@]}")

if [ "$PRINT" = 1 ]; then printf '%s\n' "${PKGS[@]}"; exit 0; fi
apt_install "${SIMULATE[@]}" "${PKGS[@]}"

PY=python3
"$PY" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 15) else 1)' \
    || die "serena-agent $SERENA_VERSION needs Python >=3.11,<3.15; $PY is $("$PY" --version 2>&1)"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input \
    "serena-agent==$SERENA_VERSION" >&2
"$VENV/bin/serena" --help >/dev/null || die "$VENV/bin/serena does not run after install"
got=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("serena-agent"))')
[ "$got" = "$SERENA_VERSION" ] || die "serena-agent $got installed, expected $SERENA_VERSION"
log "serena-agent $got in $VENV"
