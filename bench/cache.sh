#!/usr/bin/env bash
# Cache hits beside nginx's proxy_cache: modproxy (proxy_http + cache, and
# deflate for the gzip row) and nginx, each pinned to one core, in front
# of one nginx backend on the other core whose files say max-age=3600.
# Every request is a hit after the first. Prints req/s and cpu-us/req of
# the proxy (user+system CPU time of its process tree per request).
#
# Rows: 1KiB and 100KiB hits; 100KiB-gzip, the 100 KiB file asked with
# Accept-Encoding: gzip, compressed at level 6 by both (modproxy stores the
# compressed variant; nginx's gzip filter compresses each hit again).
#
# usage: bench/cache.sh [DURATION=10]   (builds the dist profile, PGO=0)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}; CONNS=${CONNS:-32}
PROXY_CPU=${PROXY_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}
source bench/lib.sh
cargo build --profile dist -p modproxy -p mod_proxy -p mod_proxy_http -p mod_cache -p mod_deflate >&2

W=$(mktemp -d -t cachebench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$W"; }
trap cleanup EXIT

mkdir -p "$W/www" "$W/be" "$W/nginx/cache"
head -c 768 /dev/urandom | base64 -w 0 > "$W/www/1k.txt"
# Compressible text, as the pages a cache in front of an app serves.
{ yes "the quick brown fox jumps over the lazy dog, a line of an ordinary page" || true; } | head -c 102400 > "$W/www/100k.txt"
chmod -R a+rX "$W"
cat > "$W/be/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $W/be/nginx.pid; error_log $W/be/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; default_type text/plain;
  server { listen 127.0.0.1:8090; root $W/www; expires 1h; } }
CONF
taskset -c "$LOAD_CPU" nginx -c "$W/be/nginx.conf" -p "$W/be" & PIDS+=($!)

cat > "$W/nginx/nginx.conf" <<CONF
master_process off; daemon off; pid $W/nginx/nginx.pid; error_log $W/nginx/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  proxy_cache_path $W/nginx/cache keys_zone=c:10m max_size=256m;
  upstream be { server 127.0.0.1:8090; keepalive 64; }
  server { listen 127.0.0.1:9002;
    gzip on; gzip_types text/plain; gzip_comp_level 6; gzip_min_length 256; gzip_proxied any;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_cache c; proxy_cache_lock on; } } }
CONF
taskset -c "$PROXY_CPU" nginx -c "$W/nginx/nginx.conf" -p "$W/nginx" & PIDS+=($!)
NGINX_PID=$!

ROOT="$W/ours"
dist_root "$ROOT" "$PWD/target/dist" proxy proxy_http cache deflate
cat > "$ROOT/modproxy.toml" <<CONF
workers = 1
[log]
access_log = "off"
error_log = "$ROOT/error.log"
[limits]
max_connections = 20000
[[vhost]]
listen = "127.0.0.1:9000"
[vhost.proxy]
pass = [{ path = "/", url = "http://127.0.0.1:8090/" }]
[vhost.cache]
enable = [{ path = "/" }]
max_size = 268435456
[vhost.deflate]
encodings = ["gzip"]
types = ["text/plain"]
level = 6
CONF
taskset -c "$PROXY_CPU" "$PWD/target/dist/modproxy" -d "$ROOT" run & PIDS+=($!)
OURS_PID=$!
sleep 1

row() { # name port path header pid
  local url="http://127.0.0.1:$2$3" t0 t1 out reqs
  curl -s -o /dev/null -H "$4" "$url"   # fill
  # What a hit looks like: its size and encoding, to show the row is what it says.
  local seen; seen=$(curl -s -o /dev/null -w '%{size_download} bytes %header{content-encoding}' -H "$4" "$url")
  t0=$(cpu_ticks "$5")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "$4" "$url")
  t1=$(cpu_ticks "$5")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  printf "%-14s %-9s %10.0f req/s %8s cpu-us/req   (%s)\n" "$1" "$6" \
    "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(cpu_us_per_req "$t0" "$t1" "$reqs")" "$seen"
}
for w in "1KiB /1k.txt X-None:1" "100KiB /100k.txt X-None:1" "100KiB-gzip /100k.txt Accept-Encoding:gzip"; do
  set -- $w
  row "$1" 9000 "$2" "$3" "$OURS_PID" modproxy
  row "$1" 9002 "$2" "$3" "$NGINX_PID" nginx
done
