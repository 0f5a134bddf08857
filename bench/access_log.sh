#!/usr/bin/env bash
# What the access log costs, beside nginx's: small-keepalive (the
# harness's `GET /` over two nginx backends on CPU 1) through modproxy and
# nginx pinned to CPU 0, each with its access log off, on (combined
# format, to a file, a write per line) and buffered (64 KiB: modproxy's
# log.access_log_buffer, nginx's `buffer=64k`). ROUNDS rounds, in turn, so
# that the machine's drift falls on every variant alike.
#
# usage: bench/access_log.sh [--duration 6] [--conns 64]   (ROUNDS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_args 64 --duration 6 "$@"
need_tools bench/access_log.sh nginx wrk curl
build_dist

W=$(mktemp -d -t modproxy-access.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/www" "$W/logs"
chmod -R a+rwX "$W"
backends_config "$W" 8080 8081
taskset -c 1 nginx -c "$W/backends.conf" -p "$W" & PIDS+=($!)

# name|port|nginx's access_log directive|modproxy's access_log|its access_log_buffer
VARIANTS=(
  "off|9100|access_log off;|off|0"
  "on|9101|access_log $W/logs/nginx-on.log combined;|$W/logs/ours-on.log|0"
  "buffered|9102|access_log $W/logs/nginx-buf.log combined buffer=64k;|$W/logs/ours-buf.log|65536"
)
ROWS=()
for v in "${VARIANTS[@]}"; do
  IFS='|' read -r name port nginx_log ours_log ours_buffer <<<"$v"
  cat > "$W/nginx-$name.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $W/nginx-$name.pid; error_log $W/nginx-$name.err;
events { worker_connections 8192; }
http { $nginx_log keepalive_requests 1000000;
  upstream mycluster { server 127.0.0.1:8080; server 127.0.0.1:8081; keepalive 256; }
  server { listen 127.0.0.1:$((port + 100));
    location / { proxy_pass http://mycluster; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } } }
CONF
  taskset -c 0 nginx -c "$W/nginx-$name.conf" -p "$W" & PIDS+=($!)
  ROWS+=("nginx, log $name|${PIDS[-1]}|$((port + 100))")

  dist_root "$W/ours-$name"
  example2_config "$W/ours-$name" "$port" 1 8080 8081
  # example2_config turns the log off: this variant's keys instead.
  sed -i "s|^access_log = \"off\"|access_log = \"$ours_log\"\naccess_log_buffer = $ours_buffer|" \
    "$W/ours-$name/modproxy.toml"
  taskset -c 0 target/dist/modproxy -d "$W/ours-$name" run & PIDS+=($!)
  ROWS+=("modproxy, log $name|${PIDS[-1]}|$port")
done
wrk_rounds 2
echo "log lines written: $(cat "$W"/logs/*.log | wc -l) (every request of the logging variants)" >&2
