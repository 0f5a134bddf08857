#!/usr/bin/env bash
# HTTP/2 backends beside HAProxy's: wrk (HTTP/1.1, keep-alive) → the proxy
# → one nghttpd over h2c (prior knowledge), every proxy pinned to one core
# with one worker thread, nghttpd and wrk on the other. modproxy runs
# proxy_http2 (`h2c://`); HAProxy a `server … proto h2` line with
# `http-reuse always`, so both multiplex the client connections' requests
# as streams on a few backend connections. (nginx has no HTTP/2 upstream.)
# Prints req/s and cpu-us/req of the proxy (user+system CPU time of its
# process per request).
#
# Rows: 19B, a 19-byte file; 100KiB, a 100 KiB one; 19B-h2c, the small
# file with HTTP/2 on both sides (h2load over h2c, prior knowledge, 32
# connections of 10 streams each), when h2load is installed.
#
# usage: bench/h2_backend.sh [DURATION=10]   (builds the dist profile, PGO=0)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DURATION=${1:-10}; CONNS=${CONNS:-32}
PROXY_CPU=${PROXY_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}
for tool in nghttpd haproxy wrk; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run tests/setup.sh" >&2; exit 1; }
done
cargo build --profile dist -p modproxy -p mod_proxy -p mod_proxy_http2 >&2

W=$(mktemp -d -t h2bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$W"; }
trap cleanup EXIT

mkdir -p "$W/www"
printf 'Hello world, h2c!\n' > "$W/www/19b.txt"
head -c 102400 /dev/urandom > "$W/www/100k.bin"
BE_PORT=${BE_PORT:-8190}
taskset -c "$LOAD_CPU" nghttpd --no-tls -d "$W/www" "$BE_PORT" >/dev/null 2>&1 & PIDS+=($!)

cat > "$W/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend f
  bind 127.0.0.1:9102
  default_backend b
frontend f2
  bind 127.0.0.1:9103 proto h2
  default_backend b
backend b
  http-reuse always
  server s1 127.0.0.1:$BE_PORT proto h2
CONF
taskset -c "$PROXY_CPU" haproxy -f "$W/haproxy.cfg" -db & PIDS+=($!)
HAPROXY_PID=$!

ROOT="$W/ours"
dist_root "$ROOT" "$PWD/target/dist" proxy proxy_http2
cat > "$ROOT/modproxy.toml" <<CONF
workers = 1
[log]
access_log = "off"
error_log = "$ROOT/error.log"
[limits]
max_connections = 20000
[[vhost]]
listen = "127.0.0.1:9100"
protocols = ["h2c", "http/1.1"]
[vhost.proxy]
pass = [{ path = "/", url = "h2c://127.0.0.1:$BE_PORT/" }]
[[vhost.proxy.h2]]
url = "h2c://127.0.0.1:$BE_PORT"
h2_connections = ${H2_CONNECTIONS:-1}
CONF
taskset -c "$PROXY_CPU" "$PWD/target/dist/modproxy" -d "$ROOT" run & PIDS+=($!)
OURS_PID=$!
sleep 1

row() { # name port path pid proxy
  local url="http://127.0.0.1:$2$3" t0 t1 out reqs seen
  seen=$(curl -s -o /dev/null -w '%{http_code} %{size_download} bytes' "$url")
  t0=$(cpu_ticks "$4")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" "$url")
  t1=$(cpu_ticks "$4")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  printf "%-8s %-9s %10.0f req/s %8s cpu-us/req   (%s)\n" "$1" "$5" \
    "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(cpu_us_per_req "$t0" "$t1" "$reqs")" "$seen"
}
for w in "19B /19b.txt" "100KiB /100k.bin"; do
  set -- $w
  row "$1" 9100 "$2" "$OURS_PID" modproxy
  row "$1" 9102 "$2" "$HAPROXY_PID" haproxy
done
h2row() { # name port path pid proxy
  local t0 t1 out reqs secs
  t0=$(cpu_ticks "$4")
  out=$(taskset -c "$LOAD_CPU" h2load -c"$CONNS" -m10 -D"$DURATION" "http://127.0.0.1:$2$3" 2>&1)
  t1=$(cpu_ticks "$4")
  reqs=$(echo "$out" | awk '/^requests:/ {print $8}')
  secs=$(echo "$out" | awk '/^finished in/ {sub(/s,/, "", $3); print $3}')
  printf "%-8s %-9s %10.0f req/s %8s cpu-us/req   (%s)\n" "$1" "$5" \
    "$(echo "$reqs / $secs" | bc -l)" \
    "$(cpu_us_per_req "$t0" "$t1" "$reqs")" \
    "$(echo "$out" | awk '/^requests:/ {print $8 " succeeded, " $10 " failed"}')"
}
if command -v h2load >/dev/null; then
  h2row 19B-h2c 9100 /19b.txt "$OURS_PID" modproxy
  h2row 19B-h2c 9103 /19b.txt "$HAPROXY_PID" haproxy
fi
