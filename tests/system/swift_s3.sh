#!/bin/bash
# OpenStack Swift with its s3api middleware, on loopback, for the store tests.
#
#   swift_s3.sh start DIR [S3_PORT] [MEMCACHE_PORT]    (defaults 8080, 11311)
#   swift_s3.sh stop DIR
#
# One directory holds everything (configuration, rings with one replica, data, logs, pid files),
# so nothing in /etc/swift is used. tempauth gives the S3 access key "test:tester" with the
# secret "testing"; the region is us-east-1 and only path-style addressing works. Swift is the
# strict peer: it verifies SigV4 and rejects a wrong secret with SignatureDoesNotMatch.
# Backend ports are derived from the S3 port (+10 account, +11 container, +12 object).
# Needs: swift-proxy swift-object swift-container swift-account memcached (scripts/deps.sh).
# See docs/test-peers.md (S3-compatible stores).
set -euo pipefail
cmd=${1:-}; B=${2:-}; P=${3:-8080}; M=${4:-11311}
[ -n "$cmd" ] && [ -n "$B" ] || { echo "usage: $0 start|stop DIR [S3_PORT] [MEMCACHE_PORT]" >&2; exit 2; }

if [ "$cmd" = stop ]; then
  for s in proxy object container account memcached; do
    if [ -f "$B/run/$s.pid" ]; then
      pid=$(cat "$B/run/$s.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$B/run/$s.pid"
    fi
  done
  exit 0
fi
[ "$cmd" = start ] || { echo "unknown command $cmd" >&2; exit 2; }

rm -rf "$B"; mkdir -p "$B/etc" "$B/node/sdb1" "$B/run" "$B/log"
A=$((P+10)); C=$((P+11)); O=$((P+12))
printf '[swift-hash]\nswift_hash_path_suffix = t\nswift_hash_path_prefix = t\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n' > "$B/etc/swift.conf"
for pair in account:$A container:$C object:$O; do
  n=${pair%%:*}; port=${pair##*:}
  cat > "$B/etc/$n-server.conf" <<CONF
[DEFAULT]
devices = $B/node
mount_check = false
disable_fallocate = true
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
user = $(id -un)
swift_dir = $B/etc
[pipeline:main]
pipeline = $n-server
[app:$n-server]
use = egg:swift#$n
CONF
  (cd "$B/etc" && swift-ring-builder $n.builder create 8 1 1 >/dev/null \
     && swift-ring-builder $n.builder add r1z1-127.0.0.1:$port/sdb1 100 >/dev/null \
     && { swift-ring-builder $n.builder rebalance >/dev/null || true; })
done
cat > "$B/etc/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $P
workers = 0
user = $(id -un)
swift_dir = $B/etc
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$M
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
CONF
setsid memcached -u "$(id -un)" -l 127.0.0.1 -p "$M" -U 0 -m 64 > "$B/log/memcached.log" 2>&1 < /dev/null &
echo $! > "$B/run/memcached.pid"
for s in account container object proxy; do
  setsid swift-$s-server "$B/etc/$s-server.conf" -v > "$B/log/$s.log" 2>&1 < /dev/null &
  echo $! > "$B/run/$s.pid"
done
# The proxy opens its port before the backends answer: wait for a real signed S3 request.
E=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
printf 'machine 127.0.0.1\nlogin test:tester\npassword testing\n' > "$B/netrc"; chmod 600 "$B/netrc"
c=000
for _ in $(seq 1 300); do
  c=$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 --netrc-file "$B/netrc" \
        -H "x-amz-content-sha256: $E" "http://127.0.0.1:$P/" || true)
  [ "$c" = 200 ] && break
  sleep 0.1
done
if [ "$c" != 200 ]; then
  echo "swift-s3 did not become ready on 127.0.0.1:$P (last ListBuckets: $c); logs in $B/log" >&2
  exit 1
fi
echo "swift-s3 ready on 127.0.0.1:$P"
