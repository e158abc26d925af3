#!/usr/bin/env bash
# Wake to first answer in an existing client session after sleep (the gateway re-initializes a
# backend session and restores the route's project, then relays the call) against a fresh
# client on a fresh Serena (initialize + activate_project + the same call), through the gateway
# and directly; target: the gateway's extra time <= 150 ms at the median. Reported, not asserted.
#
#   bench/wake.sh            # BENCH_ROUNDS (5), BENCH_POLL_MS (5)
#
# Installs Serena first (scripts/serena.sh, idempotent), then runs bench/wake.py: every process
# on 127.0.0.1 with kernel-picked ports, in its own session, stopped by its PID. Prints a
# Markdown report and writes it to bench/wake.md (BENCH_OUT to change). BENCH_KEEP=1 keeps the
# temp directory (logs, state dirs). SR_BIN overrides build/serena-remote.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/bench/wake.md}
BIN=${SR_BIN:-$ROOT/build/serena-remote}
[ -x "$BIN" ] || { echo "wake.sh: $BIN not found: build it first (cmake --build build)" >&2; exit 1; }

paths=$("$ROOT/scripts/serena.sh")
SR_SERENA_BIN=$(sed -n 's/^serena=//p' <<<"$paths")
SR_SERENA_TOOLS_DIR=$(sed -n 's/^tools_dir=//p' <<<"$paths")
export SR_SERENA_BIN SR_SERENA_TOOLS_DIR SR_BIN="$BIN"

load=$(cut -d' ' -f1-3 /proc/loadavg)
report=$(python3 "$ROOT/bench/wake.py")
{
    echo "# Wake in an existing session versus a fresh client"
    echo
    echo "Measured by \`bench/wake.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -r)," \
         "serena-agent 2.1.0, commit $(git -C "$ROOT" rev-parse --short HEAD)," \
         "load average before the run: $load)."
    echo "${BENCH_ROUNDS:-5} interleaved rounds in one run (the order rotates each round; before each measurement every" \
         "instance is asleep and no Serena runs); see the header of bench/wake.py for what is measured."
    echo
    echo "$report"
    echo
    echo "Command: \`bench/wake.sh\` (BENCH_ROUNDS=${BENCH_ROUNDS:-5}, binary $BIN). Every path includes a Serena cold start," \
         "whose duration varies by a second between rounds on a loaded machine; compare the medians of one run," \
         "not runs with each other."
} > "$OUT"
cat "$OUT"
