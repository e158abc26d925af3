#!/usr/bin/env bash
# Snapshots of a route's whole workspace (home/ + work/) against a real S3 store: serena-remote
# (encrypted, incremental) versus `tar -I 'zstd -3' | openssl enc` + `curl --aws-sigv4` doing the
# same job, on a 50 MB and a 500 MB workspace in one run (issue 9: a full snapshot <= 1.0x, a
# one-file change <= 0.1x of the baseline's time and bytes, a restore onto an empty disk <= 1.0x).
#
#   bench/snapshot.sh        # BENCH_SIZES (MB, default "50 500"), BENCH_ROUNDS (3), BENCH_STORE
#                            # (swift|s3rver, default swift), BENCH_OUT (bench/snapshot.md),
#                            # BENCH_KEEP=1, SR_BIN, BENCH_DIR (where the trees and store live)
#
# One store per run, shared by both sides. Per size, after one warm-up round, rounds alternate
# which side goes first; each measured command starts after `sync`. Wall-clock time from bash's
# EPOCHREALTIME. Both sides encrypt: serena-remote with SERENA_SNAPSHOT_KEY (AES-256-GCM,
# authenticated), the baseline with `openssl enc -aes-256-ctr` (a key derived from a file, not
# authenticated). Per round and side:
#   full:      serena-remote snapshot into a new partition with a new cache (everything stored)
#              vs tar | zstd -3 | openssl enc > x ; sha256sum ; curl PUT
#   one-file:  one source file changed, then serena-remote snapshot with its cache (what is new)
#              vs the same full archive + PUT (the baseline has nothing else to offer)
#   restore:   serena-remote restore into an empty directory (no cache)
#              vs curl GET ; openssl dec | tar -I zstd -x
# Bytes: what each stored ("added" for serena-remote, the archive for the baseline).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/bench/snapshot.md}
ROUNDS=${BENCH_ROUNDS:-3}
SIZES=${BENCH_SIZES:-50 500}
STORE=${BENCH_STORE:-swift}
SRC_BIN=${SR_BIN:-$ROOT/build/serena-remote}
[ -x "$SRC_BIN" ] || { echo "snapshot.sh: $SRC_BIN not found: build it first (cmake --build build)" >&2; exit 1; }
for t in zstd curl tar sha256sum python3 openssl; do
    command -v "$t" >/dev/null || { echo "snapshot.sh: $t is missing (scripts/deps.sh)" >&2; exit 1; }
done

W=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/sr-bench-snap.XXXXXX")
BIN=$W/serena-remote
# Private copies, so a rebuild during the run cannot swap the binaries under us.
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

# ---- the workspaces: deterministic, a project-like tree, part text, part random -------------
make_ws() { # DIR SIZE_MB
    python3 - "$1" "$2" <<'PY'
import os, random, sys
root, mb = sys.argv[1], int(sys.argv[2])
rng = random.Random(20261130 + mb)
words = ("def class return import self value memory project symbol reference file line "
         "language server index cache serena tool result json yaml config").split()
def text(n):
    out, size = [], 0
    while size < n:
        w = rng.choice(words); out.append(w); size += len(w) + 1
    return (" ".join(out))[:n].encode()
home = os.path.join(root, "home"); work = os.path.join(root, "work", "proj")
os.makedirs(os.path.join(home, "memories"), exist_ok=True)
with open(os.path.join(home, "serena_config.yml"), "w") as f:
    f.write("web_dashboard: false\n")
total = 0
for i in range(100):
    with open(os.path.join(home, "memories", f"m{i}.md"), "wb") as f:
        f.write(text(1500)); total += 1500
# Sources: many small files (0.25-7 KB), 40% of the bytes; text, some random (generated data).
target = mb * 1000 * 1000
i = 0
while total < target * 4 // 10:
    d = os.path.join(work, "src", f"pkg{i % 97}", f"sub{i % 7}")
    os.makedirs(d, exist_ok=True)
    n = rng.randint(256, 7000)
    data = text(n) if i % 3 else rng.randbytes(n)
    with open(os.path.join(d, f"m{i:06d}.{'py' if i % 3 else 'bin'}"), "wb") as f:
        f.write(data)
    total += n; i += 1
# Git history and assets: a few large files, random, text and half-and-half.
big = os.path.join(work, ".git", "objects", "pack"); os.makedirs(big, exist_ok=True)
assets = os.path.join(work, "assets"); os.makedirs(assets, exist_ok=True)
rest = target - total
parts = [(os.path.join(big, "pack-1.pack"), rest * 4 // 10, "random"),
         (os.path.join(assets, "corpus.txt"), rest * 3 // 10, "text"),
         (os.path.join(assets, "mixed.dat"), rest - rest * 4 // 10 - rest * 3 // 10, "mixed")]
for path, size, kind in parts:
    with open(path, "wb") as f:
        k = 0
        while size > 0:
            n = min(size, 65536)
            f.write(rng.randbytes(n) if kind == "random" or (kind == "mixed" and k % 2) else text(n))
            size -= n; k += 1
PY
}

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
printf 'machine 127.0.0.1\nlogin %s\npassword %s\n' "$KEY" "$SECRET" >"$W/netrc"
chmod 600 "$W/netrc"
SIG=(--aws-sigv4 "aws:amz:$REGION:s3" --netrc-file "$W/netrc")
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
SERENA_SNAPSHOT_KEY=$("$BIN" token --snapshot-key)
export SERENA_SNAPSHOT_KEY
head -c 32 /dev/urandom | base64 >"$W/enc.key"
export TMPDIR=$W/tmp
mkdir -p "$TMPDIR"
: >"$W/times.tsv"

for MB in $SIZES; do
    WS=$W/ws-$MB
    make_ws "$WS" "$MB"
    ws_bytes=$(find "$WS" -type f -printf "%s\n" | awk '{ s += $1 } END { print s }')
    ws_files=$(find "$WS" -type f | wc -l)
    echo "$MB	$ws_bytes	$ws_files" >>"$W/sizes.tsv"
    SR=(--prefix "bench/$MB" --retention 2)
    CHG=$(find "$WS/work/proj/src" -name '*.py' | LC_ALL=C sort | sed -n 1p)

    sr_full_prep() { rm -rf "$W/cache-full"; sync; }
    sr_full() { "$BIN" snapshot --state "$WS/home" --workspace "$WS/work" --partition "full-$1" --cache "$W/cache-full" --json "${SR[@]}" >"$W/sr_full.json"; }
    sr_one_prep() { printf '# round %s\n' "$1" >>"$CHG"; sync; }
    sr_one() { "$BIN" snapshot --state "$WS/home" --workspace "$WS/work" --partition inc --cache "$W/cache-inc" --json "${SR[@]}" >"$W/sr_one.json"; }
    sr_down_prep() { rm -rf "$W/r-sr"; mkdir "$W/r-sr"; sync; }
    sr_down() { "$BIN" restore --state "$W/r-sr/home" --workspace "$W/r-sr/work" --partition inc --json "${SR[@]}" >"$W/sr_down.json"; }
    cu_archive() {
        tar -C "$WS" -I 'zstd -3' -cf - home work | openssl enc -aes-256-ctr -pbkdf2 -pass "file:$W/enc.key" -out "$W/x.enc"
        local sha; sha=$(sha256sum "$W/x.enc" | cut -d' ' -f1)
        curl -sS -f -o /dev/null "${SIG[@]}" -H "x-amz-content-sha256: $sha" -T "$W/x.enc" "$EP/$BUCKET/bench/curl/$MB.tar.zst.enc"
    }
    cu_full_prep() { rm -f "$W/x.enc"; sync; }
    cu_full() { cu_archive; }
    cu_one_prep() { printf '# round %s\n' "$1" >>"$CHG"; rm -f "$W/x.enc"; sync; }
    cu_one() { cu_archive; }
    cu_down_prep() { rm -rf "$W/r-cu" "$W/y.enc"; mkdir "$W/r-cu"; sync; }
    cu_down() {
        curl -sS -f -o "$W/y.enc" "${SIG[@]}" -H "x-amz-content-sha256: $E" "$EP/$BUCKET/bench/curl/$MB.tar.zst.enc"
        openssl enc -d -aes-256-ctr -pbkdf2 -pass "file:$W/enc.key" -in "$W/y.enc" | tar -C "$W/r-cu" -I zstd -xf -
    }
    timed() { local a b; "$1_prep" "$2"; a=$(now); "$1" "$2"; b=$(now); elapsed "$a" "$b"; }

    # Warm-up (page cache, the store's first objects; the incremental partition's first
    # snapshot), not measured; proves both restores are equal to the source.
    sr_full_prep; sr_full w; cu_full_prep; cu_full
    "$BIN" snapshot --state "$WS/home" --workspace "$WS/work" --partition inc --cache "$W/cache-inc" --json "${SR[@]}" >/dev/null
    for f in sr_down cu_down; do "${f}_prep"; "$f"; done
    diff -r "$W/r-sr" "$WS" >/dev/null || { echo "snapshot.sh: serena-remote's restore differs from the source" >&2; exit 1; }
    diff -r "$W/r-cu" "$WS" >/dev/null || { echo "snapshot.sh: tar's restore differs from the source" >&2; exit 1; }

    for r in $(seq 1 "$ROUNDS"); do
        if [ $((r % 2)) = 1 ]; then order="sr cu"; else order="cu sr"; fi
        for side in $order; do
            full=$(timed ${side}_full "$r")
            if [ "$side" = sr ]; then fb=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["added"])' "$W/sr_full.json"); else fb=$(stat -c %s "$W/x.enc"); fi
            one=$(timed ${side}_one "$r$side")
            if [ "$side" = sr ]; then ob=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert not d["skipped"]; print(d["added"])' "$W/sr_one.json"); else ob=$(stat -c %s "$W/x.enc"); fi
            down=$(timed ${side}_down "$r")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$MB" "$r" "$side" "$full" "$fb" "$one" "$ob" "$down" >>"$W/times.tsv"
        done
    done
    # The source changed since serena-remote's last measured snapshot (the baseline's rounds):
    # one more, unmeasured, and its restore must equal the source.
    sr_one; sr_down_prep; sr_down
    diff -r "$W/r-sr" "$WS" >/dev/null || { echo "snapshot.sh: serena-remote's last restore differs from the source" >&2; exit 1; }
    rm -rf "$W/r-sr" "$W/r-cu" "$W/x.enc" "$W/y.enc"
done

load=$(cut -d' ' -f1-3 /proc/loadavg)
report=$(python3 - "$W/times.tsv" "$W/sizes.tsv" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
sizes = {l.split("\t")[0]: l.split("\t")[1:] for l in open(sys.argv[2]).read().splitlines()}
def mb(b): return f"{int(b) / 1e6:.2f} MB" if int(b) >= 100000 else f"{int(b) / 1e3:.1f} kB"
for size in sorted({r[0] for r in rows}, key=int):
    by = {}
    for s, r, side, full, fb, one, ob, down in (x for x in rows if x[0] == size):
        d = by.setdefault(side, {"full": [], "fb": [], "one": [], "ob": [], "down": []})
        d["full"].append(float(full)); d["fb"].append(int(fb)); d["one"].append(float(one))
        d["ob"].append(int(ob)); d["down"].append(float(down))
    med = {side: {k: statistics.median(v) for k, v in d.items()} for side, d in by.items()}
    sr, cu = med["sr"], med["cu"]
    print(f"### {size} MB workspace ({int(sizes[size][0]) / 1e6:.1f} MB, {sizes[size][1]} files)")
    print()
    print("| | serena-remote (median) | tar + zstd -3 + openssl + curl (median) | ratio | target |")
    print("|---|---:|---:|---:|---|")
    def row(label, a, b, fmt, target):
        ratio = a / b
        ok = "met" if ratio <= target else "missed"
        print(f"| {label} | {fmt(a)} | {fmt(b)} | **{ratio:.3f}** | ≤ {target}: {ok} |")
    secs = lambda v: f"{v:.3f} s"
    row("full snapshot: time", sr["full"], cu["full"], secs, 1.0)
    print(f"| full snapshot: bytes stored | {mb(sr['fb'])} | {mb(cu['fb'])} | {sr['fb'] / cu['fb']:.3f} | |")
    row("one-file change: time", sr["one"], cu["one"], secs, 0.1)
    row("one-file change: bytes stored", sr["ob"], cu["ob"], mb, 0.1)
    row("restore onto an empty disk: time", sr["down"], cu["down"], secs, 1.0)
    print()
    print("Per round (seconds; full / one-file / restore):")
    print()
    print("| round | serena-remote | baseline |")
    print("|---:|---:|---:|")
    for r in sorted({x[1] for x in rows if x[0] == size}, key=int):
        cells = {x[2]: f"{x[3]} / {x[5]} / {x[7]}" for x in rows if x[0] == size and x[1] == r}
        print(f"| {r} | {cells['sr']} | {cells['cu']} |")
    print()
PY
)
{
    echo "# Workspace snapshots: serena-remote vs tar + zstd + openssl + curl"
    echo
    echo "Measured by \`bench/snapshot.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -r)," \
         "commit $(git -C "$ROOT" rev-parse --short HEAD), load average before the report: $load)."
    echo "Store: $store_desc, on 127.0.0.1; both sides use the same store and bucket in the same run."
    echo "Work directory (trees, archives, store data): $(df -T "$W" | awk 'NR==2 { print $2 }') at $(dirname "$W")."
    echo "Workspaces: home/ (Serena's configuration, 100 memories) and work/proj (small source files, 0.25–7 KB,"
    echo "two thirds text and one third random, 40% of the bytes; a random git pack, a text corpus and a"
    echo "half-random file for the rest). Both sides encrypt (serena-remote: SERENA_SNAPSHOT_KEY, AES-256-GCM;"
    echo "baseline: openssl enc -aes-256-ctr). serena-remote keeps 2 snapshots per partition."
    echo "$ROUNDS alternating rounds per size after one warm-up round; medians of wall-clock time."
    echo
    echo "$report"
    echo "Command: \`bench/snapshot.sh\` (BENCH_SIZES=\"$SIZES\", BENCH_ROUNDS=$ROUNDS, BENCH_STORE=$STORE)."
} >"$OUT"
cat "$OUT"
