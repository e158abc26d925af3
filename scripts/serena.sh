#!/usr/bin/env bash
# Installs the real Serena backend and the Python language server it needs, so that nothing is
# fetched at run time (instances run offline except for loopback).
#
#   <repo>/.venv-serena    python3 -m venv + pip install serena-agent==$SERENA_VERSION
#   <repo>/.serena-tools   npm install --prefix: pyright@$PYRIGHT_VERSION
#                          -> .serena-tools/node_modules/.bin/pyright-langserver
#
# Idempotent: each tree carries a stamp holding the pinned version it was installed from; a
# rerun with matching stamps (and working binaries) returns at once. Used by `make run` and by
# the system tests; runs on a fresh Debian 12 machine after scripts/deps.sh (python3 with venv,
# Node 20 and npm).
#
# Why these pins (see docs/serena.md):
#   serena-agent 2.1.0 is the newest release; it installs on Python 3.11 (requires >=3.11,<3.15)
#   and passes the activate_project / find_symbol / find_referencing_symbols check offline.
#   It pins mcp==2.2.0 (the v2 SDK). pyright 1.1.414 is the newest npm release; Serena 2.1.0's
#   own default would be 1.1.403 through uvx, which needs uv and network at run time.
#
# Environment: SR_SERENA_VENV, SR_SERENA_TOOLS (install locations), SR_DEPS_FORCE=1 (ignore
# stamps), PYTHON (interpreter used to create the venv, default python3).
# Output: the installed paths, one `name=path` per line on stdout (logs go to stderr).
set -euo pipefail

SERENA_VERSION=2.1.0
PYRIGHT_VERSION=1.1.414

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${SR_SERENA_VENV:-$ROOT/.venv-serena}
TOOLS=${SR_SERENA_TOOLS:-$ROOT/.serena-tools}
PY=${PYTHON:-python3}

log() { printf 'serena.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

fresh() { # fresh STAMPFILE WANT: the stamp exists and holds WANT
    [ "${SR_DEPS_FORCE:-0}" != 1 ] && [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]
}

install_serena() {
    local stamp="$VENV/.sr-serena-stamp" want="serena-agent==$SERENA_VERSION"
    if fresh "$stamp" "$want" && [ -x "$VENV/bin/serena" ]; then
        log "serena-agent $SERENA_VERSION present"
        return 0
    fi
    command -v "$PY" >/dev/null || die "$PY not found: run scripts/deps.sh first (it installs python3 and python3-venv)"
    "$PY" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 15) else 1)' \
        || die "serena-agent $SERENA_VERSION needs Python >=3.11,<3.15; $PY is $("$PY" --version 2>&1)"
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating venv $VENV"
        "$PY" -m venv "$VENV" || die "python3 -m venv failed: on Debian install python3-venv (scripts/deps.sh does)"
    fi
    log "pip install $want (about 30 s the first time)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input "$want"
    "$VENV/bin/serena" --help >/dev/null || die "$VENV/bin/serena does not run after install"
    printf '%s' "$want" > "$stamp"
}

install_pyright() {
    local stamp="$TOOLS/.sr-serena-tools-stamp" want="pyright@$PYRIGHT_VERSION node-$(node --version 2>/dev/null || echo none)"
    local bin="$TOOLS/node_modules/.bin/pyright-langserver"
    if fresh "$stamp" "$want" && [ -x "$bin" ]; then
        log "pyright $PYRIGHT_VERSION present"
        return 0
    fi
    command -v node >/dev/null && command -v npm >/dev/null \
        || die "node and npm are needed for pyright: run scripts/deps.sh first"
    mkdir -p "$TOOLS"
    # A package.json of our own keeps npm from walking up to the repository's tree.
    [ -f "$TOOLS/package.json" ] || printf '{"name":"serena-tools","private":true}\n' > "$TOOLS/package.json"
    log "npm install pyright@$PYRIGHT_VERSION into $TOOLS"
    npm install --prefix "$TOOLS" --no-audit --no-fund --loglevel=error --save-exact \
        "pyright@$PYRIGHT_VERSION" >&2
    [ -x "$bin" ] || die "npm install finished but $bin is missing"
    printf '%s' "$want" > "$stamp"
}

install_serena
install_pyright
printf 'serena=%s\n' "$VENV/bin/serena"
printf 'python=%s\n' "$VENV/bin/python"
printf 'pyright_langserver=%s\n' "$TOOLS/node_modules/.bin/pyright-langserver"
printf 'tools_dir=%s\n' "$TOOLS"
