#!/usr/bin/env bash
# serena-remote benchmark: throughput and latency against nginx, and memory per idle SSE stream.
#
# One run, everything on 127.0.0.1 with free ports, every process started with setsid and
# stopped by its PID:
#   backend      nginx (1 worker) answering POST /mcp with a fixed JSON-RPC result
#   nginx-proxy  nginx (1 worker) reverse proxy to the backend, keep-alive upstream pool
#   gateway      serena-remote serve --upstream <backend>
# wrk (50 connections, 2 threads, same Lua script = same body and headers for every target) is
# run against direct backend, nginx-proxy and serena-remote, interleaved over ROUNDS rounds; the
# median of each figure per target is reported. serena-remote runs with its admin listener (so
# metrics are collected); serena-remote-metrics-off is the same binary with --admin-listen off,
# for the cost of the metrics (req/s and the gateway's own CPU per request). Then a second
# gateway in front of a quiet Python SSE upstream holds STREAMS idle GET /mcp streams to measure
# memory per stream.
#
# Prints a Markdown report and writes it to bench/results.md (BENCH_OUT to change).
# Knobs (environment): BENCH_DURATION (8 s), BENCH_WARMUP (1 s), BENCH_ROUNDS (5),
# BENCH_CONNS (50), BENCH_THREADS (2), BENCH_STREAMS (1000), SR_BIN (build/serena-remote),
# BENCH_LAT_ROUNDS (3) and BENCH_LAT_DURATION (2 s) for the 1-connection latency runs,
# BENCH_KEEP=1 keeps the temp directory (configs, logs, raw wrk output), SR_BIN_BEFORE (another
# serena-remote binary, e.g. an older build, measured as a fourth target "serena-remote-before"
# in the same interleaved rounds so that before/after figures share the machine's noise;
# SR_BIN_BEFORE_LABEL describes it in the report, e.g. "build of git abc1234").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
BIN=${SR_BIN:-$ROOT/build/serena-remote}
BIN_BEFORE=${SR_BIN_BEFORE:-}
DURATION=${BENCH_DURATION:-8}
WARMUP=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-5}
CONNS=${BENCH_CONNS:-50}
THREADS=${BENCH_THREADS:-2}
STREAMS=${BENCH_STREAMS:-1000}
LAT_ROUNDS=${BENCH_LAT_ROUNDS:-3}
LAT_DURATION=${BENCH_LAT_DURATION:-2}
OUT=${BENCH_OUT:-$BENCH/results.md}
HOST=127.0.0.1

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in nginx wrk curl python3 ss setsid; do
    command -v "$tool" >/dev/null || die "$tool not found; run scripts/deps.sh first"
done
[ -x "$BIN" ] || die "$BIN not found; build it first (make build)"

WORK=$(mktemp -d /tmp/sr-bench.XXXXXX)
# nginx workers drop privileges when started as root; they must be able to enter the prefix.
chmod 755 "$WORK"

# Run a private copy: a rebuild of build/ during the run must not swap the binary under us.
cp "$BIN" "$WORK/serena-remote"
BIN_SRC=$BIN
BIN="$WORK/serena-remote"
SR_VERSION=$("$BIN" --version 2>&1 | head -1)
if [ -n "$BIN_BEFORE" ]; then
    [ -x "$BIN_BEFORE" ] || die "SR_BIN_BEFORE=$BIN_BEFORE is not an executable"
    cp "$BIN_BEFORE" "$WORK/serena-remote-before"
    BIN_BEFORE_SRC=$BIN_BEFORE
    BIN_BEFORE="$WORK/serena-remote-before"
fi
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src CMakeLists.txt 2>/dev/null || GIT_REV="$GIT_REV + uncommitted src changes"

# A random token per run, never written to a file; wrk's Lua script reads it from the env.
BENCH_TOKEN=bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export BENCH_TOKEN
TOKENS_JSON="{\"bench\":\"$BENCH_TOKEN\"}"

# ---------------------------------------------------------------------------------------------
# Process handling: every process is ours, started with setsid, stopped by PID and reaped.

PIDS=()

# setsid runs the command in place (no fork): a background child of a non-interactive shell is
# not a process-group leader, so $! is the PID of the command itself.
start() {
    local logf=$1
    shift
    setsid "$@" >"$logf" 2>&1 </dev/null &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

stop_pid() { # TERM, wait up to 5 s, then KILL; always reaps.
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        # A dead child stays a zombie until waited for; check its state, not kill -0.
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
        [ -e "/proc/$pid" ] || break
        sleep 0.1
    done
    if [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
        log "pid $pid did not stop on SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    local keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() { # free_ports N: N distinct free TCP ports on 127.0.0.1
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

wait_http() { # wait_http NAME PID CURL-ARGS... : until curl gets a 200 (10 s)
    local name=$1 pid=$2 i code
    shift 2
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during start-up (see logs in $WORK)"
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" || true)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    die "$name not ready after 10 s (last status $code)"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
# utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# ---------------------------------------------------------------------------------------------
# File descriptors: the memory test needs ~2 per stream in the gateway.

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((2 * STREAMS + 256)) ]; then
    die "ulimit -n is $NOFILE; the stream test needs $((2 * STREAMS + 256)) (raise the hard limit)"
fi

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
read -r P_BACKEND P_PROXY P_GW P_SSE_UP P_SSE_GW P_GW_BEFORE P_ADMIN P_GW_OFF < <(free_ports 8)

# ---------------------------------------------------------------------------------------------
# 1. Backend nginx and 2. reverse-proxy nginx.

nginx_conf() { # nginx_conf DIR HTTP-BLOCK-BODY
    local dir=$1
    mkdir -p "$dir/tmp"
    chmod 755 "$dir" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    # The same for every target: wrk's connections are never recycled mid-run (nginx's
    # default of 1000 requests per connection would add reconnects to the nginx figures only).
    keepalive_requests 1000000;
$2
}
EOF
}

nginx_conf "$WORK/backend" "
    server {
        listen $HOST:$P_BACKEND;
        location = /mcp {
            default_type application/json;
            # A session id on every answer, as MCP servers send one on initialize: the gateway
            # maps its own edge session to it.
            add_header mcp-session-id bench-backend-session always;
            return 200 '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[]}}';
        }
    }"

nginx_conf "$WORK/proxy" "
    upstream backend {
        server $HOST:$P_BACKEND;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen $HOST:$P_PROXY;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"

# edge_session URL: initialize through a gateway; prints the edge session id it issued.
edge_session() {
    local sid
    sid=$(curl -s -D - -o /dev/null -X POST -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H "Authorization: Bearer $BENCH_TOKEN" \
        --data '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
        "$1" | tr -d '\r' | sed -n 's/^mcp-session-id: //Ip')
    case "$sid" in sr1.*) printf '%s' "$sid" ;; *) die "$1 issued no edge session id (got '$sid')" ;; esac
}

POST_ARGS=(-X POST -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
    -H "Authorization: Bearer $BENCH_TOKEN" -H 'mcp-session-id: bench'
    --data '{"jsonrpc":"2.0","id":1,"method":"tools/list"}')

start "$WORK/backend/stderr.log" nginx -p "$WORK/backend" -c "$WORK/backend/nginx.conf"
PID_BACKEND=$STARTED_PID
wait_http "backend nginx" "$PID_BACKEND" "${POST_ARGS[@]}" "http://$HOST:$P_BACKEND/mcp"

start "$WORK/proxy/stderr.log" nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf"
PID_PROXY=$STARTED_PID
wait_http "nginx proxy" "$PID_PROXY" "${POST_ARGS[@]}" "http://$HOST:$P_PROXY/mcp"

# ---------------------------------------------------------------------------------------------
# 3. serena-remote in front of the backend; idle RSS after start and a few requests.

mkdir -p "$WORK/gw" "$WORK/gw-sse" "$WORK/gw-off"
# Its one log line per request goes to /dev/null: nginx runs with access_log off, and a log file
# on disk would add a write to a file per request (the gateway still formats and writes the line).
# Metrics on (the admin listener on its own port), as serve runs by default.
start /dev/null env API_TOKENS_JSON="$TOKENS_JSON" \
    "$BIN" serve --listen "$HOST:$P_GW" --upstream "http://$HOST:$P_BACKEND/mcp" \
    --state-dir "$WORK/gw/state" --drain-timeout 2s --admin-listen "$HOST:$P_ADMIN"
PID_GW=$STARTED_PID
wait_http "serena-remote" "$PID_GW" "http://$HOST:$P_GW/health"
# An edge session: every measured request carries its id, so the gateway opens (AES-GCM) and maps
# it on each one. The other targets get the same header bytes.
BENCH_SID=$(edge_session "http://$HOST:$P_GW/mcp") || exit 1
export BENCH_SID
POST_ARGS=(-X POST -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
    -H "Authorization: Bearer $BENCH_TOKEN" -H "mcp-session-id: $BENCH_SID"
    --data '{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
for i in 1 2 3 4 5; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "${POST_ARGS[@]}" "http://$HOST:$P_GW/mcp")
    [ "$code" = 200 ] || die "serena-remote answered $code to the benchmark request (run it by hand to see its log)"
done
sleep 0.5
RSS_IDLE=$(rss_kib "$PID_GW")
log "serena-remote idle RSS ${RSS_IDLE} KiB"

# The same build with the admin listener off, which turns metrics collection off: the figure is
# the cost of the metrics, measured in the same interleaved rounds. Its own edge session (each
# gateway seals ids with its own key); the header bytes have the same length.
start /dev/null env API_TOKENS_JSON="$TOKENS_JSON" \
    "$BIN" serve --listen "$HOST:$P_GW_OFF" --upstream "http://$HOST:$P_BACKEND/mcp" \
    --state-dir "$WORK/gw-off/state" --drain-timeout 2s --admin-listen off
PID_GW_OFF=$STARTED_PID
wait_http "serena-remote-metrics-off" "$PID_GW_OFF" "http://$HOST:$P_GW_OFF/health"
declare -A SID
SID[serena-remote-metrics-off]=$(curl -s -D - -o /dev/null -X POST -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -H "Authorization: Bearer $BENCH_TOKEN" \
    --data '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
    "http://$HOST:$P_GW_OFF/mcp" | tr -d '\r' | sed -n 's/^mcp-session-id: //Ip')
case "${SID[serena-remote-metrics-off]}" in sr1.*) ;; *) die "serena-remote-metrics-off issued no edge session id" ;; esac
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H "Authorization: Bearer $BENCH_TOKEN" -H "mcp-session-id: ${SID[serena-remote-metrics-off]}" \
    --data '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' "http://$HOST:$P_GW_OFF/mcp")
[ "$code" = 200 ] || die "serena-remote-metrics-off answered $code to the benchmark request"

if [ -n "$BIN_BEFORE" ]; then
    mkdir -p "$WORK/gw-before"
    start /dev/null env API_TOKENS_JSON="$TOKENS_JSON" \
        "$BIN_BEFORE" serve --listen "$HOST:$P_GW_BEFORE" --upstream "http://$HOST:$P_BACKEND/mcp" \
        --state-dir "$WORK/gw-before/state" --drain-timeout 2s
    PID_GW_BEFORE=$STARTED_PID
    wait_http "serena-remote-before" "$PID_GW_BEFORE" "http://$HOST:$P_GW_BEFORE/health"
    code=$(curl -s -o /dev/null -w '%{http_code}' "${POST_ARGS[@]}" "http://$HOST:$P_GW_BEFORE/mcp")
    [ "$code" = 200 ] || die "serena-remote-before answered $code to the benchmark request"
fi

# ---------------------------------------------------------------------------------------------
# 4. wrk: warm-up + measured run per target, targets interleaved, order rotated each round.

TARGETS=(direct nginx-proxy serena-remote serena-remote-metrics-off)
declare -A URL=(
    [direct]="http://$HOST:$P_BACKEND/mcp"
    [nginx-proxy]="http://$HOST:$P_PROXY/mcp"
    [serena-remote]="http://$HOST:$P_GW/mcp"
    [serena-remote-metrics-off]="http://$HOST:$P_GW_OFF/mcp"
)
if [ -n "$BIN_BEFORE" ]; then
    TARGETS+=(serena-remote-before)
    URL[serena-remote-before]="http://$HOST:$P_GW_BEFORE/mcp"
fi
declare -A RPS P50 P99 BAD CPU
declare -A PID_OF=([serena-remote]=$PID_GW [serena-remote-metrics-off]=$PID_GW_OFF)
[ -z "$BIN_BEFORE" ] || PID_OF[serena-remote-before]=$PID_GW_BEFORE

run_wrk() { # run_wrk TARGET SECONDS OUTFILE [CONNECTIONS THREADS]
    BENCH_SID=${SID[$1]:-$BENCH_SID} wrk -t "${5:-$THREADS}" -c "${4:-$CONNS}" -d "${2}s" --latency -s "$BENCH/mcp_post.lua" "${URL[$1]}" \
        >"$3" 2>&1 || die "wrk failed against $1: $(tail -3 "$3")"
}
parse_wrk() { # parse_wrk TARGET FILE: sets R_rps R_p50 R_p99 R_requests R_non2xx R_sockerr
    local line
    line=$(grep '^BENCH_RESULT' "$2") || die "no result line from wrk against $1: $(cat "$2")"
    eval "$(sed -E 's/^BENCH_RESULT //; s/([a-z0-9]+)=/R_\1=/g' <<<"$line")"
}

log "wrk: $ROUNDS rounds x ${#TARGETS[@]} targets x (${WARMUP} s warm-up + ${DURATION} s), $CONNS connections, $THREADS threads"
for ((round = 0; round < ROUNDS; round++)); do
    for ((k = 0; k < ${#TARGETS[@]}; k++)); do
        t=${TARGETS[(k + round) % ${#TARGETS[@]}]}
        run_wrk "$t" "$WARMUP" "$WORK/wrk-$t-$round-warmup.txt"
        f="$WORK/wrk-$t-$round.txt"
        pid=${PID_OF[$t]:-}
        [ -z "$pid" ] || c0=$(cpu_ticks "$pid")
        run_wrk "$t" "$DURATION" "$f"
        parse_wrk "$t" "$f"
        # The gateway's own CPU per request (µs): unlike req/s, barely moved by what else runs.
        [ -z "$pid" ] || CPU[$t]+="$(calc '%.2f' "($(cpu_ticks "$pid") - $c0) * 1000000 / $(getconf CLK_TCK) / $R_requests") "
        RPS[$t]+="$R_rps "
        P50[$t]+="$R_p50 "
        P99[$t]+="$R_p99 "
        BAD[$t]=$((${BAD[$t]:-0} + R_non2xx + R_sockerr))
        log "round $((round + 1)) $t: ${R_rps} req/s p50 ${R_p50} us p99 ${R_p99} us (non-2xx $R_non2xx, socket errors $R_sockerr)"
    done
done
# Unloaded latency: one connection, so p50 is the cost of the hop itself rather than queueing
# behind 49 other connections on a saturated machine. Informational; the targets use 50.
declare -A L50
log "unloaded latency: $LAT_ROUNDS rounds x ${#TARGETS[@]} targets x ${LAT_DURATION} s, 1 connection"
for ((round = 0; round < LAT_ROUNDS; round++)); do
    for ((k = 0; k < ${#TARGETS[@]}; k++)); do
        t=${TARGETS[(k + round) % ${#TARGETS[@]}]}
        f="$WORK/wrk-$t-c1-$round.txt"
        run_wrk "$t" "$LAT_DURATION" "$f" 1 1
        parse_wrk "$t" "$f"
        L50[$t]+="$R_p50 "
        BAD[$t]=$((${BAD[$t]:-0} + R_non2xx + R_sockerr))
    done
done

RSS_AFTER=$(rss_kib "$PID_GW")
HWM_AFTER=$(hwm_kib "$PID_GW")

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {
    if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A M_RPS M_P50 M_P99 M_L50
for t in "${TARGETS[@]}"; do
    M_RPS[$t]=$(median "${RPS[$t]}")
    M_P50[$t]=$(median "${P50[$t]}")
    M_P99[$t]=$(median "${P99[$t]}")
    M_L50[$t]=$(median "${L50[$t]}")
done

# What the metrics-on gateway counted (the admin listener was never scraped during the load).
METRICS_COUNTED=$(curl -s "http://$HOST:$P_ADMIN/metrics" |
    awk '/^serena_remote_requests_total\{route="bench",rpc_method="tools\/list",status="200"\}/ {print $2}')
stop_pid "$PID_GW"
stop_pid "$PID_GW_OFF"
[ -z "$BIN_BEFORE" ] || stop_pid "$PID_GW_BEFORE"
stop_pid "$PID_PROXY"
stop_pid "$PID_BACKEND"

# ---------------------------------------------------------------------------------------------
# 5. Memory per idle SSE stream: a second gateway in front of a quiet SSE upstream.

start "$WORK/gw-sse/upstream.log" python3 "$BENCH/sse_upstream.py" "$P_SSE_UP"
PID_SSE_UP=$STARTED_PID
wait_http "SSE upstream" "$PID_SSE_UP" -X POST --data '{}' "http://$HOST:$P_SSE_UP/mcp"

start "$WORK/gw-sse/stderr.log" env API_TOKENS_JSON="$TOKENS_JSON" \
    "$BIN" serve --listen "$HOST:$P_SSE_GW" --upstream "http://$HOST:$P_SSE_UP/mcp" \
    --state-dir "$WORK/gw-sse/state" --drain-timeout 2s --admin-listen off
PID_SSE_GW=$STARTED_PID
wait_http "serena-remote (SSE)" "$PID_SSE_GW" "http://$HOST:$P_SSE_GW/health"
# One edge session for every stream (the streams are what is measured, not the sessions).
BENCH_SSE_SID=$(edge_session "http://$HOST:$P_SSE_GW/mcp") || exit 1
export BENCH_SSE_SID
SSE_POST_ARGS=(-X POST -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
    -H "Authorization: Bearer $BENCH_TOKEN" -H "mcp-session-id: $BENCH_SSE_SID"
    --data '{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
for i in 1 2 3 4 5; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "${SSE_POST_ARGS[@]}" "http://$HOST:$P_SSE_GW/mcp")
    [ "$code" = 200 ] || die "serena-remote (SSE) answered $code (log: $WORK/gw-sse/stderr.log)"
done
sleep 0.5
RSS_SSE_IDLE=$(rss_kib "$PID_SSE_GW")

log "opening $STREAMS idle SSE streams"
start "$WORK/gw-sse/hold.log" python3 "$BENCH/sse_hold.py" "$HOST" "$P_SSE_GW" "$STREAMS"
PID_HOLD=$STARTED_PID
ready=
for i in $(seq 600); do
    ready=$(grep -m1 '^READY' "$WORK/gw-sse/hold.log" 2>/dev/null || true)
    [ -n "$ready" ] && break
    kill -0 "$PID_HOLD" 2>/dev/null || die "SSE client exited: $(tail -5 "$WORK/gw-sse/hold.log")"
    sleep 0.1
done
[ -n "$ready" ] || die "SSE client did not open its streams within 60 s"
[ "$ready" = "READY ok=$STREAMS failed=0" ] \
    || die "not every stream opened ($ready): $(tail -3 "$WORK/gw-sse/hold.log"; tail -3 "$WORK/gw-sse/stderr.log")"

# Every client got its 200 head through the gateway; also confirm both sides of each relay
# are established sockets of the gateway before reading its memory.
count_est() { ss -Htn state established "( $1 )" | wc -l; }
for i in $(seq 100); do
    N_CLIENT=$(count_est "sport = :$P_SSE_GW")
    N_UP=$(count_est "dport = :$P_SSE_UP")
    [ "$N_CLIENT" -ge "$STREAMS" ] && [ "$N_UP" -ge "$STREAMS" ] && break
    sleep 0.1
done
[ "$N_CLIENT" -ge "$STREAMS" ] && [ "$N_UP" -ge "$STREAMS" ] \
    || die "gateway holds $N_CLIENT client / $N_UP upstream sockets, expected $STREAMS each"
sleep 1
RSS_SSE=$(rss_kib "$PID_SSE_GW")
FDS_SSE=$(ls "/proc/$PID_SSE_GW/fd" | wc -l)
log "serena-remote with $STREAMS streams: RSS ${RSS_SSE} KiB ($N_CLIENT client, $N_UP upstream sockets, $FDS_SSE fds)"

stop_pid "$PID_HOLD"
stop_pid "$PID_SSE_GW"
stop_pid "$PID_SSE_UP"

# ---------------------------------------------------------------------------------------------
# 6. Report.

pass() { awk "BEGIN { exit !($1) }" && echo met || echo "**missed**"; }

RATIO=$(calc '%.2f' "${M_RPS[serena-remote]} / ${M_RPS[nginx-proxy]}")
ADD_GW=$(calc '%.0f' "${M_P50[serena-remote]} - ${M_P50[direct]}")
ADD_PROXY=$(calc '%.0f' "${M_P50[nginx-proxy]} - ${M_P50[direct]}")
ADD1_GW=$(calc '%.0f' "${M_L50[serena-remote]} - ${M_L50[direct]}")
ADD1_PROXY=$(calc '%.0f' "${M_L50[nginx-proxy]} - ${M_L50[direct]}")
# Metrics on vs off: the ratio of the medians, and the median of the per-round ratios (the two
# runs of a round are minutes apart at most, so pairing them cancels much of the machine's drift).
MET_RATIO=$(calc '%.3f' "${M_RPS[serena-remote]} / ${M_RPS[serena-remote-metrics-off]}")
MET_PAIRED=$(paste -d' ' <(tr ' ' '\n' <<<"${RPS[serena-remote]}" | grep .) \
    <(tr ' ' '\n' <<<"${RPS[serena-remote-metrics-off]}" | grep .) |
    awk '{print $1 / $2}' | sort -g | awk '{a[NR]=$1} END {
        if (NR % 2) printf "%.3f", a[(NR + 1) / 2]; else printf "%.3f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
MET_L50=$(calc '%.0f' "${M_L50[serena-remote]} - ${M_L50[serena-remote-metrics-off]}")
CPU_ON=$(median "${CPU[serena-remote]}")
CPU_OFF=$(median "${CPU[serena-remote-metrics-off]}")
CPU_RATIO=$(calc '%.3f' "$CPU_ON / $CPU_OFF")
IDLE_MIB=$(calc '%.2f' "$RSS_IDLE / 1024")
PER_STREAM=$(calc '%.1f' "($RSS_SSE - $RSS_SSE_IDLE) / $STREAMS")

fmt_us() { awk -v u="$1" 'BEGIN { if (u >= 1000) printf "%.2f ms", u / 1000; else printf "%d µs", u }'; }

CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)

{
    echo "# serena-remote benchmark"
    echo
    echo "Median of $ROUNDS interleaved rounds; wrk, $CONNS connections, $THREADS threads, ${DURATION} s per run after a ${WARMUP} s warm-up"
    echo "(last column: median of $LAT_ROUNDS runs of ${LAT_DURATION} s with 1 connection, 1 thread);"
    echo "MCP \`tools/list\` POST with Bearer token and \`mcp-session-id\` (the edge session serena-remote issued: opened and mapped to the backend's session on every request) to every target; backend is nginx returning a fixed JSON-RPC result."
    echo
    echo "| target | req/s | p50 | p99 | p50, 1 connection |"
    echo "|---|---:|---:|---:|---:|"
    for t in "${TARGETS[@]}"; do
        printf '| %s | %s | %s | %s | %s |\n' "$t" "$(calc '%.0f' "${M_RPS[$t]}")" \
            "$(fmt_us "${M_P50[$t]}")" "$(fmt_us "${M_P99[$t]}")" "$(fmt_us "${M_L50[$t]}")"
    done
    echo
    echo "| figure | value | target | |"
    echo "|---|---:|---:|---|"
    echo "| req/s ratio serena-remote / nginx-proxy | $RATIO | ≥ 1.0 | $(pass "$RATIO >= 1.0") |"
    echo "| req/s metrics on ÷ metrics off, median of per-round ratios | $MET_PAIRED | ≥ 0.97 | $(pass "$MET_PAIRED >= 0.97") |"
    echo "| req/s metrics on ÷ metrics off, ratio of medians | $MET_RATIO | (≥ 0.97) | $(pass "$MET_RATIO >= 0.97") |"
    echo "| gateway CPU per request, metrics on ÷ off (median; $CPU_ON µs ÷ $CPU_OFF µs) | $CPU_RATIO | ≤ 1.03 | $(pass "$CPU_RATIO <= 1.03") |"
    echo "| p50 at 1 connection, metrics on − metrics off | $MET_L50 µs | | |"
    echo "| added p50 over direct, serena-remote | $ADD_GW µs | ≤ 100 µs | $(pass "$ADD_GW <= 100") |"
    echo "| added p50 over direct, nginx-proxy (reference) | $ADD_PROXY µs | | |"
    echo "| added p50 over direct at 1 connection, serena-remote | $ADD1_GW µs | (≤ 100 µs) | $(pass "$ADD1_GW <= 100") |"
    echo "| added p50 over direct at 1 connection, nginx-proxy | $ADD1_PROXY µs | | |"
    if [ -n "$BIN_BEFORE" ]; then
        echo "| req/s ratio serena-remote-before / nginx-proxy (same run) | $(calc '%.2f' "${M_RPS[serena-remote-before]} / ${M_RPS[nginx-proxy]}") | | |"
        echo "| added p50 over direct, serena-remote-before | $(calc '%.0f' "${M_P50[serena-remote-before]} - ${M_P50[direct]}") µs | | |"
        echo "| added p50 over direct at 1 connection, serena-remote-before | $(calc '%.0f' "${M_L50[serena-remote-before]} - ${M_L50[direct]}") µs | | |"
    fi
    echo "| idle RSS serena-remote | $IDLE_MIB MiB | ≤ 8 MiB | $(pass "$IDLE_MIB <= 8") |"
    echo "| RSS per idle SSE stream ($STREAMS streams) | $PER_STREAM KiB | ≤ 32 KiB | $(pass "$PER_STREAM <= 32") |"
    echo
    echo "serena-remote runs with its admin listener on (metrics collected: its /metrics counted"
    echo "${METRICS_COUNTED:-?} tools/list requests of the bench route after the runs); serena-remote-metrics-off is"
    echo "the same binary with \`--admin-listen off\`, which turns collection off."
    echo "Details: serena-remote RSS after the load runs $((RSS_AFTER)) KiB (peak $((HWM_AFTER)) KiB);"
    echo "SSE instance $RSS_SSE_IDLE KiB idle, $RSS_SSE KiB holding $STREAMS streams ($N_CLIENT client + $N_UP upstream sockets, $FDS_SSE fds)."
    echo "Failed requests (non-2xx or socket errors) over all measured runs:"
    echo "$(for t in "${TARGETS[@]}"; do printf '%s %s; ' "$t" "${BAD[$t]}"; done | sed 's/; $//')."
    echo "Gateway CPU per request (µs), per round: serena-remote [$(echo ${CPU[serena-remote]})] serena-remote-metrics-off [$(echo ${CPU[serena-remote-metrics-off]})]$([ -z "$BIN_BEFORE" ] || echo " serena-remote-before [$(echo ${CPU[serena-remote-before]})], median $(median "${CPU[serena-remote-before]}") µs against $(median "${CPU[serena-remote]}") µs")."
    echo "Per-round figures (req/s): $(for t in "${TARGETS[@]}"; do printf '%s [%s] ' "$t" "$(echo ${RPS[$t]})"; done)"
    echo
    echo "Machine: $(nproc) CPUs, $CPU_MODEL, Linux $(uname -r); $(date -u '+%Y-%m-%d %H:%M UTC');"
    echo "load average before the run $LOAD_BEFORE (wrk, both nginx and the gateway share these CPUs)."
    echo "Versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | awk '{print "wrk", $2}'),"
    echo "$SR_VERSION (${BIN_SRC#"$ROOT"/}, git $GIT_REV), Python $(python3 -c 'import platform; print(platform.python_version())')."
    [ -z "$BIN_BEFORE" ] || echo "serena-remote-before: ${SR_BIN_BEFORE_LABEL:-$BIN_BEFORE_SRC} (SR_BIN_BEFORE), same flags and backend."
    echo
    echo "Command: \`make bench\` (or \`bench/run.sh\`)."
} >"$WORK/results.md"

cat "$WORK/results.md"
cp "$WORK/results.md" "$OUT"
log "written to $OUT"
for t in "${TARGETS[@]}"; do
    [ "${BAD[$t]}" = 0 ] || log "warning: $t had ${BAD[$t]} failed requests; its figures are not comparable"
done
