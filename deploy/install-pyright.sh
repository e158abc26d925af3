#!/usr/bin/env bash
# pyright (Serena's Python language server), pinned, into PREFIX with npm:
# PREFIX/node_modules/.bin/pyright-langserver is what the seeded serena_config.yml points at
# (SERENA_TOOLS_DIR=PREFIX). Pure JavaScript, so the build stage installs it and the runtime
# image copies the tree; it runs on Debian bookworm's Node 18 (18.20.4 checked: pyright 1.1.414
# declares node >= 14, and its CLI and langserver answer on 18.20.4).
#
#   deploy/install-pyright.sh PREFIX        (the Dockerfile: /opt/serena/tools; CI: a temp dir)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
load_versions

PREFIX=${1:?usage: install-pyright.sh PREFIX}
mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund --no-save --omit=dev "pyright@$PYRIGHT_VERSION" >&2
got=$(node "$PREFIX/node_modules/pyright/index.js" --version)
[ "$got" = "pyright $PYRIGHT_VERSION" ] || die "installed pyright reports '$got', expected $PYRIGHT_VERSION"
[ -x "$PREFIX/node_modules/.bin/pyright-langserver" ] || die "pyright-langserver missing in $PREFIX"
log "$got in $PREFIX"
