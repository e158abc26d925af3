#!/usr/bin/env bash
# Snapshot and restore of a synthetic 50 MB SERENA_HOME against a real S3 store, serena-remote
# versus `tar -I zstd` + `curl --aws-sigv4` doing the same work (issue 4: ratio <= 1.0, and an
# unchanged state uploads 0 bytes).
#
#   bench/snapshot.sh        # BENCH_ROUNDS (5), BENCH_STORE (swift|s3rver, default swift),
#                            # BENCH_OUT (bench/snapshot.md), BENCH_KEEP=1, SR_BIN, BENCH_PERF=1
#                            # BENCH_DIR (where the trees, archives and store live; default $TMPDIR)
#
# One store per run, shared by both sides: OpenStack Swift with s3api (tests/system/swift_s3.sh,
# strict SigV4) or s3rver (tests/system/node_modules). Rounds alternate which side goes first.
# Per round and side:
#   upload:   serena-remote snapshot --state HOME --force   (archive + fingerprint + SHA-256 +
#             PUT + manifest), versus
#             tar -C HOME -I 'zstd -3' -cf x.tar.zst . ; sha256sum ; curl --aws-sigv4 -T (PUT)
#   restore:  serena-remote restore --state NEW/home        (manifest GET, archive GET, SHA-256
#             verify, safe extract, rename), versus
#             curl GET ; mkdir ; tar -C NEW -I zstd -xf
# Same zstd level (3: what serena-remote uses), same store, same bucket, same page cache.
# Wall-clock time of the whole command(s), from bash's EPOCHREALTIME. Every process runs on
# 127.0.0.1 on kernel-picked ports in its own session and is stopped by its PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/bench/snapshot.md}
ROUNDS=${BENCH_ROUNDS:-5}
STORE=${BENCH_STORE:-swift}
SRC_BIN=${SR_BIN:-$ROOT/build/serena-remote}
[ -x "$SRC_BIN" ] || { echo "snapshot.sh: $SRC_BIN not found: build it first (cmake --build build)" >&2; exit 1; }
for t in zstd curl tar sha256sum python3; do
    command -v "$t" >/dev/null || { echo "snapshot.sh: $t is missing (scripts/deps.sh)" >&2; exit 1; }
done

W=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/sr-bench-snap.XXXXXX")
BIN=$W/serena-remote
# Private copies, so a rebuild during the run cannot swap the binaries under us (the archive and
# store work runs in serena-remote-snapshot, which serena-remote finds next to itself).
cp "$SRC_BIN" "$BIN"
[ ! -x "$SRC_BIN-snapshot" ] || cp "$SRC_BIN-snapshot" "$BIN-snapshot"
S3PID=
cleanup() {
    if [ "$STORE" = swift ]; then
        "$ROOT/tests/system/swift_s3.sh" stop "$W/swift" >/dev/null 2>&1 || true
    elif [ -n "$S3PID" ]; then
        kill "$S3PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$S3PID" 2>/dev/null || break; sleep 0.05; done
        kill -9 "$S3PID" 2>/dev/null || true
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_free() { python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1])))' "$1" 2>/dev/null; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# ---- the synthetic SERENA_HOME: deterministic, ~50 MB, partly compressible -----------------
HOME_DIR=$W/home
python3 - "$HOME_DIR" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(20261125)
words = ("def class return import self value memory project symbol reference file line "
         "language server index cache serena tool result json yaml config").split()
def text(n):
    out, size = [], 0
    while size < n:
        w = rng.choice(words)
        out.append(w)
        size += len(w) + 1
    return (" ".join(out))[:n].encode()
total = 0
# Thousands of small files in a project-like tree: half text (compressible), half random.
for i in range(4000):
    d = os.path.join(root, "projects", f"p{i % 16}", "cache", f"d{i % 97}")
    os.makedirs(d, exist_ok=True)
    n = rng.randint(256, 7000)
    data = text(n) if i % 2 == 0 else rng.randbytes(n)
    with open(os.path.join(d, f"f{i:05d}.{'md' if i % 2 == 0 else 'bin'}"), "wb") as f:
        f.write(data)
    total += n
for i in range(200):
    d = os.path.join(root, "projects", f"p{i % 16}", "memories")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"memory-{i}.md"), "wb") as f:
        f.write(text(1500))
    total += 1500
# A few large files up to ~50 MB: random (incompressible), text, and half-and-half.
big = os.path.join(root, "projects", "p0", "index")
os.makedirs(big, exist_ok=True)
rest = 50 * 1000 * 1000 - total
sizes = [rest * 4 // 10, rest * 3 // 10, rest - rest * 4 // 10 - rest * 3 // 10]
with open(os.path.join(big, "symbols.bin"), "wb") as f:
    f.write(rng.randbytes(sizes[0]))
with open(os.path.join(big, "symbols.txt"), "wb") as f:
    for _ in range(sizes[1] // 65536):
        f.write(text(65536))
    f.write(text(sizes[1] % 65536))
with open(os.path.join(big, "mixed.dat"), "wb") as f:
    for k in range(sizes[2] // 65536):
        f.write(text(65536) if k % 2 else rng.randbytes(65536))
    f.write(rng.randbytes(sizes[2] % 65536))
with open(os.path.join(root, "serena_config.yml"), "w") as f:
    f.write("web_dashboard: false\n")
PY
home_bytes=$(find "$HOME_DIR" -type f -printf "%s\n" | awk "{ s += \$1 } END { print s }")
home_files=$(find "$HOME_DIR" -type f | wc -l)

# ---- the store ------------------------------------------------------------------------------
BUCKET=bench
REGION=us-east-1
if [ "$STORE" = swift ]; then
    P=$(free_port); M=$(free_port)
    for _ in $(seq 1 20); do
        port_free $((P+10)) && port_free $((P+11)) && port_free $((P+12)) && break
        P=$(free_port)
    done
    "$ROOT/tests/system/swift_s3.sh" start "$W/swift" "$P" "$M" >/dev/null
    KEY=test:tester; SECRET=testing
    store_desc="OpenStack Swift $(dpkg-query -W -f '${Version}' swift 2>/dev/null || echo '?') with s3api (strict SigV4), proxy and backends single-process (workers = 0), one replica"
elif [ "$STORE" = s3rver ]; then
    P=$(free_port)
    mkdir -p "$W/s3rver"
    NODE_OPTIONS=--openssl-legacy-provider setsid node "$ROOT/tests/system/node_modules/s3rver/bin/s3rver.js" \
        -d "$W/s3rver" -a 127.0.0.1 -p "$P" --silent </dev/null >"$W/s3rver.log" 2>&1 &
    S3PID=$!
    KEY=S3RVER; SECRET=S3RVER-bench-secret
    store_desc="s3rver 3.7.1 (Node $(node --version))"
else
    echo "snapshot.sh: BENCH_STORE must be swift or s3rver" >&2; exit 2
fi
EP=http://127.0.0.1:$P
E=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
# Credentials from a netrc file: the same as --user KEY:SECRET, but Swift's access key
# ("test:tester") holds a colon, which --user would split at.
printf 'machine 127.0.0.1\nlogin %s\npassword %s\n' "$KEY" "$SECRET" >"$W/netrc"
chmod 600 "$W/netrc"
SIG=(--aws-sigv4 "aws:amz:$REGION:s3" --netrc-file "$W/netrc")
# Ready: a signed PUT Bucket succeeds (200, or 409 "already yours").
code=000
for _ in $(seq 1 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "${SIG[@]}" -H "x-amz-content-sha256: $E" -X PUT "$EP/$BUCKET" || true)
    [ "$code" = 200 ] || [ "$code" = 409 ] && break
    sleep 0.1
done
[ "$code" = 200 ] || [ "$code" = 409 ] || { echo "snapshot.sh: the store did not answer PUT Bucket ($code)" >&2; exit 1; }

export SERENA_R2_STATE_ENABLED=1 S3_ENDPOINT=$EP S3_REGION=$REGION R2_BUCKET_NAME=$BUCKET \
       AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET
unset SERENA_REMOTE_STORE SERENA_SNAPSHOT_EXCLUDE SERENA_INSTANCE_ID CLOUDFLARE_DURABLE_OBJECT_ID R2_ACCOUNT_ID
SRFLAGS=(--prefix bench/v1 --partition p1 --retention 2)
export TMPDIR=$W/tmp
mkdir -p "$TMPDIR"

# Each measured command starts from the same place: the previous restore's tree is removed and
# every dirty page written back (sync) before the clock starts, so one side's writeback is never
# billed to the other.
sr_up_prep() { sync; }
sr_up() { "$BIN" snapshot --state "$HOME_DIR" --force --json "${SRFLAGS[@]}" >"$W/sr_up.json"; }
sr_down_prep() { rm -rf "$W/r-sr"; mkdir "$W/r-sr"; sync; }
sr_down() { "$BIN" restore --state "$W/r-sr/home" --json "${SRFLAGS[@]}" >"$W/sr_down.json"; }
cu_up_prep() { rm -f "$W/x.tar.zst"; sync; }
cu_up() {
    tar -C "$HOME_DIR" -I 'zstd -3' -cf "$W/x.tar.zst" .
    local sha; sha=$(sha256sum "$W/x.tar.zst" | cut -d' ' -f1)
    curl -sS -f -o /dev/null "${SIG[@]}" -H "x-amz-content-sha256: $sha" -T "$W/x.tar.zst" "$EP/$BUCKET/bench/curl/x.tar.zst"
}
cu_down_prep() { rm -rf "$W/r-cu" "$W/y.tar.zst"; sync; }
cu_down() {
    curl -sS -f -o "$W/y.tar.zst" "${SIG[@]}" -H "x-amz-content-sha256: $E" "$EP/$BUCKET/bench/curl/x.tar.zst"
    mkdir -p "$W/r-cu/home"
    tar -C "$W/r-cu/home" -I zstd -xf "$W/y.tar.zst"
}
timed() { local a b; "$1_prep"; a=$(now); "$1"; b=$(now); elapsed "$a" "$b"; }

# Warm-up (page cache, store's first objects), not measured; proves both restores are equal.
for f in sr_up sr_down cu_up cu_down; do "${f}_prep"; "$f"; done
diff -r "$W/r-sr/home" "$HOME_DIR" >/dev/null || { echo "snapshot.sh: serena-remote's restore differs from the source" >&2; exit 1; }
diff -r "$W/r-cu/home" "$HOME_DIR" >/dev/null || { echo "snapshot.sh: tar's restore differs from the source" >&2; exit 1; }

: >"$W/times.tsv"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then order="sr cu"; else order="cu sr"; fi
    for side in $order; do
        up=$(timed ${side}_up)
        down=$(timed ${side}_down)
        printf '%s\t%s\t%s\t%s\n' "$r" "$side" "$up" "$down" >>"$W/times.tsv"
    done
done
sr_size=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["size"])' "$W/sr_up.json")
cu_size=$(stat -c %s "$W/x.tar.zst")

# ---- unchanged state: the next snapshot uploads nothing ------------------------------------
list_count() {
    curl -sS -f "${SIG[@]}" -H "x-amz-content-sha256: $E" "$EP/$BUCKET?list-type=2&prefix=bench%2Fv1%2F" |
        grep -o '<Key>' | wc -l
}
objs_before=$(list_count)
a=$(now)
"$BIN" snapshot --state "$HOME_DIR" --json "${SRFLAGS[@]}" >"$W/skip.json"
b=$(now)
skip_t=$(elapsed "$a" "$b")
objs_after=$(list_count)
skipped=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("yes" if d["skipped"] else "no")' "$W/skip.json")

# ---- optional: where serena-remote's time goes ---------------------------------------------
perf_txt=
if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null; then
    perf record -q -g -o "$W/perf-up.data" -- "$BIN" snapshot --state "$HOME_DIR" --force "${SRFLAGS[@]}" >/dev/null 2>&1 || true
    rm -rf "$W/r-perf"; mkdir "$W/r-perf"
    perf record -q -g -o "$W/perf-down.data" -- "$BIN" restore --state "$W/r-perf/home" "${SRFLAGS[@]}" >/dev/null 2>&1 || true
    rm -rf "$W/r-strace"; mkdir -p "$W/r-strace/home"
    perf_txt=$(for f in up down; do
        echo "perf record, serena-remote $f: self time by library"
        perf report -i "$W/perf-$f.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -6
    done
    if command -v strace >/dev/null; then
        rm -rf "$W/r-strace"; mkdir "$W/r-strace"
        strace -f -c -o "$W/st-sr.txt" "$BIN" restore --state "$W/r-strace/home" "${SRFLAGS[@]}" >/dev/null 2>&1 || true
        rm -rf "$W/r-strace"; mkdir -p "$W/r-strace/home"
        strace -f -c -o "$W/st-tar.txt" tar -C "$W/r-strace/home" -I zstd -xf "$W/x.tar.zst" || true
        for t in sr tar; do
            echo "strace -c, restore by $t: calls of openat / newfstatat / mkdir(at) / umask"
            awk '$NF ~ /^(openat|newfstatat|mkdir|mkdirat|umask)$/ { printf "  %s %s", $NF, ($5 ~ /^[0-9]+$/ && $NF != $5 ? $4 : $4) } END { print "" }' "$W/st-$t.txt"
        done
    fi)
fi

load=$(cut -d' ' -f1-3 /proc/loadavg)
report=$(python3 - "$W/times.tsv" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
t = {(s, k): [] for s in ("sr", "cu") for k in ("up", "down")}
for r, s, up, down in rows:
    t[(s, "up")].append(float(up)); t[(s, "down")].append(float(down))
med = {k: statistics.median(v) for k, v in t.items()}
print("| | serena-remote (median) | tar + zstd -3 + curl --aws-sigv4 (median) | ratio (serena-remote ÷ tar+curl) |")
print("|---|---:|---:|---:|")
for k, label in (("up", "snapshot + upload"), ("down", "download + restore")):
    print(f"| {label} | {med[('sr', k)]:.3f} s | {med[('cu', k)]:.3f} s | **{med[('sr', k)] / med[('cu', k)]:.2f}** |")
tot_sr = med[("sr", "up")] + med[("sr", "down")]
tot_cu = med[("cu", "up")] + med[("cu", "down")]
print(f"| both | {tot_sr:.3f} s | {tot_cu:.3f} s | **{tot_sr / tot_cu:.2f}** |")
print()
print("Per round (seconds, upload / restore):")
print()
print("| round | first | serena-remote | tar + curl |")
print("|---:|---|---:|---:|")
by = {}
for r, s, up, down in rows:
    by.setdefault(r, {})[s] = (up, down)
    by[r].setdefault("first", s)
for r in sorted(by, key=int):
    f = "serena-remote" if by[r]["first"] == "sr" else "tar + curl"
    print(f"| {r} | {f} | {by[r]['sr'][0]} / {by[r]['sr'][1]} | {by[r]['cu'][0]} / {by[r]['cu'][1]} |")
PY
)
{
    echo "# Snapshot and restore: serena-remote vs tar + zstd + curl"
    echo
    echo "Measured by \`bench/snapshot.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -r)," \
         "commit $(git -C "$ROOT" rev-parse --short HEAD), load average before the run: $load)."
    echo "Store: $store_desc, on 127.0.0.1; both sides use the same store and bucket in the same run."
    echo "Work directory (trees, archives, store data): $(df -T "$W" | awk 'NR==2 { print $2 }') at $(dirname "$W")."
    echo "SERENA_HOME: $home_files files, $home_bytes bytes (deterministic: thousands of 0.25–7 KB files, half"
    echo "text and half random, and three large files: random, text, half-and-half)."
    echo "Archive: serena-remote $sr_size bytes, tar + zstd -3 $cu_size bytes."
    echo "$ROUNDS alternating rounds after one warm-up round; medians of wall-clock time."
    echo
    echo "$report"
    echo
    echo "Unchanged state: a snapshot without \`--force\` right after the last one took ${skip_t} s," \
         "skipped: **$skipped**; objects under the prefix before / after: $objs_before / $objs_after" \
         "(0 bytes uploaded, no new manifest)."
    if [ -n "$perf_txt" ]; then echo; echo '```'; echo "$perf_txt"; echo '```'; fi
    echo
    echo "Command: \`bench/snapshot.sh\` (BENCH_ROUNDS=$ROUNDS, BENCH_STORE=$STORE)."
} >"$OUT"
cat "$OUT"
