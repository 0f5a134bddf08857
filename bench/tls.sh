#!/usr/bin/env bash
# TLS termination beside nginx and HAProxy, with the same certificate: the harness's
# small-keepalive and 100KiB-body workloads over https. Like peers.sh, each
# proxy is pinned to CPU 0 and balances over two nginx backends (8080, 8081)
# on CPU 1, where wrk runs too; cpu-us/req is the proxy's CPU per request,
# sys-us/req its kernel part.
#
# usage: bench/tls.sh [--duration 10] [--conns 64]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_args 64 "$@"
need_tools bench/tls.sh nginx haproxy wrk openssl
build_dist

W=$(mktemp -d -t modproxy-tls.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

self_signed_cert "$W"

mkdir -p "$W/www"
head -c 76800 /dev/urandom | base64 -w 0 > "$W/www/100k.txt"
chmod -R a+rX "$W"
backends_config "$W" 8080 8081
taskset -c 1 nginx -c "$W/backends.conf" -p "$W" & PIDS+=($!)

cat > "$W/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $W/nginx.pid; error_log $W/nginx.log;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  upstream mycluster { server 127.0.0.1:8080; server 127.0.0.1:8081; keepalive 256; }
  server { listen 127.0.0.1:9444 ssl; ssl_certificate $W/cert.pem; ssl_certificate_key $W/key.pem;
    location / { proxy_pass http://mycluster; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } } }
CONF
taskset -c 0 nginx -c "$W/nginx.conf" -p "$W" & PIDS+=($!)
NGINX=${PIDS[-1]}

haproxy_config "$W" 9445 http/1.1
taskset -c 0 haproxy -f "$W/haproxy.cfg" -db & PIDS+=($!)
HAPROXY=${PIDS[-1]}

ROOT="$W/modproxy"
dist_root "$ROOT"
cat > "$ROOT/modproxy.toml" <<CONF
workers = 1
[log]
access_log = "off"
error_log = "$ROOT/error.log"

[[vhost]]
listen = "127.0.0.1:9443"
server_name = "localhost"
tls_certificate = "$W/cert.pem"
tls_key = "$W/key.pem"

[vhost.proxy]
preserve_host = true
pass = [{ path = "/", url = "balancer://mycluster/" }]

[[vhost.proxy.balancer]]
name = "mycluster"
members = [{ url = "http://127.0.0.1:8080" }, { url = "http://127.0.0.1:8081" }]
CONF
taskset -c 0 target/dist/modproxy -d "$ROOT" run & PIDS+=($!)
OURS=${PIDS[-1]}

for port in 8080 9443 9444 9445; do
  for _ in $(seq 100); do curl -sk -o /dev/null "https://127.0.0.1:$port/" && break
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

wrk_header workload
for wl in "small-keepalive|/" "100KiB-body|/100k.txt"; do
  name=${wl%%|*}; path=${wl#*|}
  for p in "modproxy|$OURS|9443" "nginx|$NGINX|9444" "haproxy|$HAPROXY|9445"; do
    IFS='|' read -r who pid port <<<"$p"
    wrk_row "$name" "$who" "$pid" "https://127.0.0.1:$port$path"
  done
done
