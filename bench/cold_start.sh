#!/usr/bin/env bash
# Cold start of the real Serena: started directly versus the first request for a sleeping token
# through serena-remote (target: the gateway adds <= 50 ms), and the gateway's RSS with 8 running
# instances (gateway process only, not its children).
#
#   bench/cold_start.sh            # BENCH_ROUNDS (5), BENCH_POLL_MS (5), RSS_BACKEND (both|serena|everything)
#
# Installs Serena first (scripts/serena.sh, idempotent), then runs bench/cold_start.py: every
# process on 127.0.0.1 with kernel-picked ports, in its own session, stopped by its PID. Prints
# a Markdown report and writes it to bench/cold_start.md (BENCH_OUT to change). BENCH_KEEP=1
# keeps the temp directory (logs, state dirs). SR_BIN overrides build/serena-remote.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/bench/cold_start.md}
BIN=${SR_BIN:-$ROOT/build/serena-remote}
[ -x "$BIN" ] || { echo "cold_start.sh: $BIN not found: build it first (cmake --build build)" >&2; exit 1; }

paths=$("$ROOT/scripts/serena.sh")
SR_SERENA_BIN=$(sed -n 's/^serena=//p' <<<"$paths")
SR_SERENA_TOOLS_DIR=$(sed -n 's/^tools_dir=//p' <<<"$paths")
export SR_SERENA_BIN SR_SERENA_TOOLS_DIR SR_BIN="$BIN"

load=$(cut -d' ' -f1-3 /proc/loadavg)
report=$(python3 "$ROOT/bench/cold_start.py")
{
    echo "# Cold start and gateway memory"
    echo
    echo "Measured by \`bench/cold_start.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -r)," \
         "serena-agent 2.1.0, commit $(git -C "$ROOT" rev-parse --short HEAD)," \
         "load average before the run: $load)."
    echo "${BENCH_ROUNDS:-5} alternating rounds in one run; see the header of bench/cold_start.py for what is measured."
    echo
    echo "$report"
    echo
    echo "Command: \`bench/cold_start.sh\` (BENCH_ROUNDS=${BENCH_ROUNDS:-5}, RSS_BACKEND=${RSS_BACKEND:-both})." \
         "On a machine shared with other jobs (see the load average) direct start times vary between rounds;" \
         "gateway rounds cluster on the readiness-probe schedule. RSS is the gateway process only" \
         "(VmRSS from /proc/PID/status), its children excluded."
} > "$OUT"
cat "$OUT"
