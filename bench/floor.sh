#!/usr/bin/env bash
# The floor under small-keepalive: what the kernel charges per request for
# the sockets alone. bench/floor/relay.c is a bare epoll byte relay (no
# HTTP, a backend connection per client connection, one read and one write
# per side per request: the same system calls and TCP segments as nginx and
# HAProxy). It runs beside modproxy (Example 2, the bench/run.sh build),
# nginx and HAProxy (configured as in ../shared/bench/peers.sh), each pinned
# to CPU 0, over the harness's two nginx backends on CPU 1. ROUNDS rounds,
# in turn, so the machine's drift falls on every proxy alike.
#
# How to read it: the relay's cpu-us/req is a lower bound for any proxy
# here, and its sys-us/req is the kernel's share, which an HTTP proxy pays
# too. Where the relay sits above 0.8x of the best peer, no user-space
# change can bring a proxy under that line.
#
# usage: bench/floor.sh [--duration 8] [--conns 64]   (ROUNDS=3, PGO as run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_args 64 --duration 8 "$@"
need_tools bench/floor.sh cc nginx haproxy wrk curl
build_dist

W=$(mktemp -d -t modproxy-floor.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/www"
chmod -R a+rwX "$W"
backends_config "$W" 8080 8081
taskset -c 1 nginx -c "$W/backends.conf" -p "$W" & PIDS+=($!)
ROWS=()

cc -O2 -Wall -o "$W/relay" bench/floor/relay.c
taskset -c 0 "$W/relay" 9200 8080 8081 & PIDS+=($!)
ROWS+=("relay, no HTTP|${PIDS[-1]}|9200")

dist_root "$W/ours"
example2_config "$W/ours" 9000 1 8080 8081
taskset -c 0 target/dist/modproxy -d "$W/ours" run & PIDS+=($!)
ROWS+=("modproxy|${PIDS[-1]}|9000")

cat > "$W/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  upstream mycluster { server 127.0.0.1:8080; server 127.0.0.1:8081; keepalive 256; }
  server { listen 127.0.0.1:9002 backlog=4096;
    location / { proxy_pass http://mycluster; proxy_http_version 1.1; proxy_request_buffering off;
      proxy_set_header Connection ""; proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } } }
CONF
taskset -c 0 nginx -c "$W/nginx.conf" & PIDS+=($!)
ROWS+=("nginx|${PIDS[-1]}|9002")

haproxy_config "$W" 9003
taskset -c 0 haproxy -db -f "$W/haproxy.cfg" & PIDS+=($!)
ROWS+=("haproxy|${PIDS[-1]}|9003")

wrk_rounds 3
