#!/usr/bin/env bash
# `make run`: the gateway with embedded defaults, ready for a client.
#
# - installs Serena (pinned, .venv-serena/) and pyright (.serena-tools/) when missing;
# - generates a token on first use: only its sha256: digest is stored, in
#   .serena-remote/tokens.json, and the token is printed once (delete that file for a new one);
# - runs each token's backend in a bwrap sandbox when `check --sandbox bwrap` says it works here;
# - generates a snapshot key on first use (.serena-remote/snapshot.key, 0600): every snapshot
#   the store keeps is then encrypted (SERENA_SNAPSHOT_KEY; keep a copy of that file);
# - serves http://127.0.0.1:8787/mcp with one Serena per token, state in .serena-remote/.
#
# Any setting from `build/serena-remote serve --help` can be given in the environment,
# e.g. `SLEEP_AFTER=5m SERENA_PROJECT=$PWD make run`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN=build/serena-remote
STATE=${SERENA_REMOTE_STATE_DIR:-$ROOT/.serena-remote}
LISTEN=${SERENA_REMOTE_LISTEN:-127.0.0.1:8787}

command -v node >/dev/null && command -v npm >/dev/null || scripts/deps.sh
scripts/serena.sh >/dev/null
export PATH="$ROOT/.venv-serena/bin:$PATH"

mkdir -p "$STATE"
chmod 700 "$STATE"
TOKENS="$STATE/tokens.json"
if [ -z "${API_TOKEN:-}${API_TOKENS_JSON:-}${API_TOKENS_FILE:-}" ] && [ ! -s "$TOKENS" ]; then
    out=$("$BIN" token)
    token=$(printf '%s\n' "$out" | sed -n 1p)
    digest=$(printf '%s\n' "$out" | sed -n 2p)
    umask 077
    printf '{"local": "%s"}\n' "$digest" > "$TOKENS"
    cat <<MSG

  A new token was generated. It is shown only now; the gateway keeps just its digest
  ($TOKENS). Delete that file and run 'make run' again for a new one.

    token: $token

  Claude Code:
    claude mcp add --scope user --transport http serena-remote http://$LISTEN/mcp --header "Authorization: Bearer $token"

  Claude Desktop (claude_desktop_config.json):
    {"mcpServers": {"serena-remote": {"command": "npx", "args": ["-y", "mcp-remote",
      "http://$LISTEN/mcp", "--header", "Authorization: Bearer $token", "--transport", "http-only"]}}}

  Cursor (~/.cursor/mcp.json):
    {"mcpServers": {"serena-remote": {"url": "http://$LISTEN/mcp",
      "headers": {"Authorization": "Bearer $token"}}}}

  curl:
    curl -s http://$LISTEN/health

MSG
fi
[ -n "${API_TOKEN:-}${API_TOKENS_JSON:-}${API_TOKENS_FILE:-}" ] || export API_TOKENS_FILE="$TOKENS"
# Snapshots are encrypted at rest with a key made on first use (unless one is given).
KEYFILE="$STATE/snapshot.key"
if [ -z "${SERENA_SNAPSHOT_KEY:-}" ]; then
    if [ ! -s "$KEYFILE" ]; then
        (umask 077 && "$BIN" token --snapshot-key > "$KEYFILE.tmp" && mv "$KEYFILE.tmp" "$KEYFILE")
        echo "serena-remote: new snapshot key in $KEYFILE (snapshots are encrypted with it; keep a copy)" >&2
    fi
    SERENA_SNAPSHOT_KEY=$(cat "$KEYFILE")
    export SERENA_SNAPSHOT_KEY
fi
# Each token's backend in its own sandbox when this machine allows it (user namespaces): it can
# then write only its own home/ and work/ and read no other token's files. SERENA_SANDBOX=none
# (or bwrap) decides instead.
if [ -z "${SERENA_SANDBOX:-}" ]; then
    if probe=$("$BIN" check --state-dir "$STATE" --sandbox bwrap 2>&1) &&
        printf '%s\n' "$probe" | grep -q '^sandbox: bwrap works here'; then
        export SERENA_SANDBOX=bwrap
        echo "serena-remote: each token's backend runs in a bwrap sandbox (SERENA_SANDBOX=none turns it off)" >&2
    else
        echo "serena-remote: no sandbox: $(printf '%s\n' "$probe" | grep 'serena-remote check' | tail -1)" >&2
    fi
fi
echo "serena-remote: serving http://$LISTEN/mcp (state in $STATE; Ctrl-C stops it)" >&2
[ "${SERENA_REMOTE_ADMIN_LISTEN:-}" = off ] ||
    echo "serena-remote: every route's state: build/serena-remote status, or http://${SERENA_REMOTE_ADMIN_LISTEN:-127.0.0.1:8788}/ (metrics at /metrics)" >&2
exec "$BIN" serve --listen "$LISTEN" --state-dir "$STATE" "$@"
