#!/usr/bin/env bash
# Builds deploy/Dockerfile.cloudflare with podman on this machine, from the repository root as
# its context (the root .dockerignore applies, as it does for `wrangler deploy`), with no
# container registry: the `debian:bookworm` the Dockerfile starts from is made here with
# debootstrap (--variant=minbase, from the mirror apt uses) and imported under that name.
#
#   deploy/local-image.sh check     exit 0 when podman can build and run containers here, else
#                                   print why not and exit 3 (the tests skip on 3, naming it)
#   deploy/local-image.sh base      make (or reuse) the base image
#   deploy/local-image.sh build     base, then the image: prints "image <name>" and its size
#   deploy/local-image.sh context   the build context as podman would send it: files and bytes
#   deploy/local-image.sh podman ARGS...   podman with this script's configuration
#
# Everything podman keeps (storage, its configuration) lives under SR_PODMAN_DIR (default
# /var/cache/serena-remote/podman), outside the repository, so layers and the base survive
# between runs on one machine (untagged images older than two days are pruned after a build);
# /etc/containers is never read or changed. The base is rebuilt
# only when its inputs change (suite, variant, mirror, the local CA certificates, this
# script's base recipe): their hash is a label of the image.
#
# Local test images only: the base carries this machine's local CA certificates (Debian's
# /usr/local/share/ca-certificates, read by update-ca-certificates) and points npm, pip and
# Go at the resulting bundle, so installs inside the build trust a TLS-intercepting proxy if
# the machine has one. An image for Cloudflare is built by `wrangler deploy` from the real
# debian:bookworm and carries none of that.
#
# Needs root, podman, runc, debootstrap (scripts/deps.sh installs them).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The build context (default: this repository; another checkout's root works the same).
CTX=${SR_CONTEXT:-$ROOT}
PD=${SR_PODMAN_DIR:-/var/cache/serena-remote/podman}
IMAGE=${SR_IMAGE:-localhost/serena-remote:test}
BASE=docker.io/library/debian:bookworm
SUITE=bookworm
BASE_RECIPE=3 # bump when the base's recipe below changes

log() { printf 'local-image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

setup_conf() {
    mkdir -p "$PD/storage" "$PD/tmp"
    # Measured on these machines: the default nofile limit is too low for npm inside the build
    # and crun is not there; runc is.
    cat > "$PD/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000","nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
    cat > "$PD/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$PD/storage"
runroot = "$PD/run"
EOF
    export CONTAINERS_CONF=$PD/containers.conf CONTAINERS_STORAGE_CONF=$PD/storage.conf
    export TMPDIR=$PD/tmp
}

pm() { podman "$@"; }

cmd_check() {
    local why=""
    if [ "$(id -u)" != 0 ]; then why="not root (the local image build uses debootstrap and rootful podman)"
    elif ! command -v podman >/dev/null; then why="podman is not installed (scripts/deps.sh installs it)"
    elif ! command -v runc >/dev/null; then why="runc is not installed (scripts/deps.sh installs it)"
    elif ! command -v debootstrap >/dev/null; then why="debootstrap is not installed (scripts/deps.sh installs it)"
    fi
    if [ -z "$why" ]; then
        setup_conf
        local out
        if ! out=$(timeout 120 podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}' 2>&1); then
            why="podman info fails here: $(printf '%s' "$out" | tail -3 | tr '\n' ' ')"
        fi
    fi
    if [ -n "$why" ]; then
        echo "podman cannot build or run containers on this machine: $why"
        exit 3
    fi
    echo "podman $(podman --version | awk '{print $3}') usable (runtime runc, overlay storage in $PD)"
}

# The mirror apt uses for the suite itself (deb822 URIs: of debian.sources, else sources.list).
mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk -v s="$SUITE" '
            /^$/ { if (u != "" && ok) { print u; exit } u = ""; ok = 0 }
            /^URIs:/ { u = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
            END { if (u != "" && ok) print u }' "$f" | head -1)
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    uri=$(awk -v s="$SUITE" '$1 == "deb" && $3 == s { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$uri" ] && { echo "$uri"; return; }
    echo http://deb.debian.org/debian
}

local_cas() { ls /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; }

base_hash() {
    {
        echo "recipe $BASE_RECIPE suite $SUITE variant minbase mirror $(mirror)"
        local c
        for c in $(local_cas); do sha256sum "$c"; done
    } | sha256sum | cut -c1-16
}

cmd_base() {
    setup_conf
    local want have
    want=$(base_hash)
    have=$(pm image inspect --format '{{index .Labels "serena-remote.base"}}' "$BASE" 2>/dev/null || true)
    if [ "$have" = "$want" ]; then
        log "base $BASE is current ($want)"
        return 0
    fi
    local m t0 t rootfs
    m=$(mirror)
    t0=$(date +%s)
    t=$(mktemp -d "$PD/tmp/base.XXXXXX")
    rootfs=$t/rootfs
    log "debootstrap --variant=minbase $SUITE from $m (base $want; a few minutes, once per machine)"
    debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$m" > "$t/debootstrap.log" 2>&1 \
        || { tail -30 "$t/debootstrap.log" >&2; rm -rf "$t"; die "debootstrap failed"; }
    local c
    for c in $(local_cas); do cp "$c" "$rootfs/usr/local/share/ca-certificates/"; done
    env -u TMPDIR chroot "$rootfs" update-ca-certificates > "$t/ca.log" 2>&1 \
        || { cat "$t/ca.log" >&2; rm -rf "$t"; die "update-ca-certificates in the base failed"; }
    # As in the Docker Hub image: no apt lists, no caches.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    local b=/etc/ssl/certs/ca-certificates.crt
    tar -C "$rootfs" -c . | pm import \
        --change "LABEL serena-remote.base=$want" \
        --change "ENV NODE_EXTRA_CA_CERTS=$b" --change "ENV SSL_CERT_FILE=$b" \
        --change "ENV PIP_CERT=$b" --change "ENV REQUESTS_CA_BUNDLE=$b" \
        --change "CMD [\"bash\"]" - "$BASE" > /dev/null
    rm -rf "$t"
    log "base $BASE imported in $(( $(date +%s) - t0 ))s"
}

# The context podman sends: every file the root .dockerignore admits (podman applies the same
# rules itself; this lists them by copying the context through a throw-away build).
cmd_context() {
    setup_conf
    cmd_base >&2
    local f
    f=$(mktemp "$PD/tmp/ctx.XXXXXX")
    printf 'FROM %s\nCOPY . /ctx\nRUN cd /ctx && find . -type f | wc -l && du -sb . | cut -f1\n' "$BASE" > "$f"
    pm build --pull=never --isolation chroot --network host --no-cache -f "$f" -t localhost/sr-context:probe "$CTX" 2>&1 \
        | awk '/^[0-9]+$/ { n[++i] = $1 } END { printf "context: %d files, %d bytes (%.1f MiB)\n", n[1], n[2], n[2] / 1048576 }'
    rm -f "$f"
    pm rmi -f localhost/sr-context:probe > /dev/null 2>&1 || true
}

cmd_build() {
    setup_conf
    cmd_base
    local t0 rc=0
    t0=$(date +%s)
    log "podman build -f deploy/Dockerfile.cloudflare -t $IMAGE (context: the repository root)"
    pm build --pull=never --isolation chroot --network host --layers --jobs 2 \
        -f "$CTX/deploy/Dockerfile.cloudflare" -t "$IMAGE" "$CTX" > "$PD/build.log" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        tail -60 "$PD/build.log" >&2
        die "podman build failed (full log: $PD/build.log)"
    fi
    local size
    size=$(pm image inspect --format '{{.Size}}' "$IMAGE")
    echo "image $IMAGE"
    echo "size $size bytes ($(( size / 1048576 )) MiB)"
    echo "build_seconds $(( $(date +%s) - t0 ))"
    # Untagged images of earlier builds pile up (each source change leaves one): those older than
    # two days go. Newer ones stay, as they are the layer cache of the next build.
    pm image prune -f --filter until=48h > /dev/null 2>&1 || true
}

case ${1:-} in
    check) cmd_check ;;
    base) cmd_base ;;
    build) cmd_build ;;
    context) cmd_context ;;
    podman) shift; setup_conf; pm "$@" ;;
    *) echo "usage: $0 check|base|build|context|podman ARGS..." >&2; exit 2 ;;
esac
