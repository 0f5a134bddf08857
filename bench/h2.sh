#!/usr/bin/env bash
# HTTP/2 to clients beside nginx (`http2`) and HAProxy (`alpn h2`), with
# the same certificate: h2load's small responses over h2 (TLS, ALPN),
# with 1 and with 100 concurrent streams per connection. As in peers.sh,
# each proxy is pinned to CPU 0 and balances over two nginx backends
# (8080, 8081) on CPU 1, where h2load runs too; cpu-us/req is the
# proxy's CPU per request (sys-us/req: its kernel part). p50 and p99
# come from h2load's per-request log (time until the end of each
# response), max from its summary.
#
# usage: bench/h2.sh [--duration 10] [--conns 16]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_args 16 "$@"
need_tools bench/h2.sh nginx haproxy h2load openssl
build_dist

W=$(mktemp -d -t modproxy-h2.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

self_signed_cert "$W"

mkdir -p "$W/www"
chmod -R a+rX "$W"
backends_config "$W" 8080 8081
taskset -c 1 nginx -c "$W/backends.conf" -p "$W" & PIDS+=($!)

cat > "$W/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $W/nginx.pid; error_log $W/nginx.log;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  upstream mycluster { server 127.0.0.1:8080; server 127.0.0.1:8081; keepalive 256; }
  server { listen 127.0.0.1:9444 ssl http2; ssl_certificate $W/cert.pem; ssl_certificate_key $W/key.pem;
    location / { proxy_pass http://mycluster; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } } }
CONF
taskset -c 0 nginx -c "$W/nginx.conf" -p "$W" & PIDS+=($!)
NGINX=${PIDS[-1]}

haproxy_config "$W" 9445 h2,http/1.1
taskset -c 0 haproxy -f "$W/haproxy.cfg" -db & PIDS+=($!)
HAPROXY=${PIDS[-1]}

ROOT="$W/modproxy"
dist_root "$ROOT"
cat > "$ROOT/modproxy.toml" <<CONF
workers = 1
[log]
access_log = "off"
error_log = "$ROOT/error.log"
[limits]
max_connections = 20000

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

for port in 9443 9444 9445; do
  for _ in $(seq 100); do curl -sk --http2 -o /dev/null "https://127.0.0.1:$port/" && break; sleep 0.1; done
done

printf '%-8s %-9s %10s %10s %10s %10s %10s %10s\n' streams proxy req/s p50-ms p99-ms max-ms cpu-us/req sys-us/req
for streams in 1 100; do
  for p in "modproxy|$OURS|9443" "nginx|$NGINX|9444" "haproxy|$HAPROXY|9445"; do
    IFS='|' read -r who pid port <<<"$p"
    log="$W/h2load-$who-$streams.tsv"
    t0=$(cpu_ticks "$pid"); s0=$(sys_ticks "$pid")
    out=$(taskset -c 1 h2load -D "$DURATION" -c "$CONNS" -m "$streams" --log-file="$log" "https://127.0.0.1:$port/" 2>&1)
    t1=$(cpu_ticks "$pid"); s1=$(sys_ticks "$pid")
    reqs=$(awk '/^requests:/ {print $8}' <<<"$out")
    failed=$(awk '/^requests:/ {print $10}' <<<"$out")
    [ "${failed:-0}" = 0 ] || echo "warning: $who: $failed requests failed" >&2
    cpu=$(cpu_us_per_req "$t0" "$t1" "$reqs")
    # "time for request:  min  max  mean  sd  +/- sd"
    tmax=$(awk '/^time for request:/ {print $5}' <<<"$out")
    # The log's third column: microseconds until the end of the response.
    read -r p50 p99 < <(awk -F'\t' '$2 != -1 {print $3}' "$log" | sort -n |
      awk '{v[NR] = $1} END { if (NR) printf "%.2f %.2f\n", v[int(NR * 0.5) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000; else print "- -" }')
    printf '%-8s %-9s %10s %10s %10s %10s %10s %10s\n' "$streams" "$who" \
      "$(awk '/^finished in/ {print $4}' <<<"$out")" "$p50" "$p99" "$tmax" "$cpu" \
      "$(cpu_us_per_req "$s0" "$s1" "$reqs")"
  done
done
