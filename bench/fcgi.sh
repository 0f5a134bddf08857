#!/usr/bin/env bash
# FastCGI beside Apache (mod_proxy_fcgi) and nginx (fastcgi_pass): each
# proxy pinned to CPU 0 in front of the same PHP-FPM pool (pm = static) on
# CPU 1, where wrk runs too; a small PHP response (`<?php echo 'ok';`),
# kept connections to PHP-FPM on all three (Apache's enablereuse=on,
# nginx's fastcgi_keep_conn, our enable_reuse). cpu-us/req is the CPU
# time (user+system) the proxy's process tree spent per request: PHP-FPM
# bounds the req/s of all three, so that is the figure to compare.
#
# usage: bench/fcgi.sh [--duration 10] [--conns 8]
#   PROFILE=release skips the dist build (LTO) for a quick look.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_args 8 "$@"
FPM=$(compgen -G '/usr/sbin/php-fpm*' | sort | tail -1 || true)
[ -n "$FPM" ] || { echo "bench/fcgi.sh needs php-fpm (apt-get install php-fpm)" >&2; exit 1; }
for tool in nginx wrk /usr/sbin/apache2; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "bench/fcgi.sh needs $tool (apt-get install nginx wrk apache2-bin)" >&2; exit 1; }
done
PROFILE=${PROFILE:-dist}
cargo build --profile "$PROFILE" -p modproxy -p mod_proxy -p mod_proxy_fcgi >&2
BIN=${CARGO_TARGET_DIR:-$PWD/target}/$PROFILE

W=$(mktemp -d -t modproxy-fcgi.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3
            for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT

# ---- PHP-FPM on CPU 1: one pool, more workers than connections --------------
mkdir -p "$W/www"
echo "<?php echo 'ok';" > "$W/www/small.php"
chmod -R a+rX "$W"
cat > "$W/fpm.conf" <<CONF
[global]
pid = $W/fpm.pid
error_log = $W/fpm.log
daemonize = no
[www]
listen = 127.0.0.1:9100
listen.backlog = 4096
pm = static
pm.max_children = 32
$( [ "$(id -u)" = 0 ] && printf 'user = nobody\ngroup = nogroup\n' )
CONF
taskset -c 1 "$FPM" -n -F -y "$W/fpm.conf" -p "$W" & PIDS+=($!)

# ---- the three proxies on CPU 0 ---------------------------------------------
mkdir -p "$W/apache/logs"
cat > "$W/apache/httpd.conf" <<CONF
ServerRoot /etc/apache2
ServerName localhost
PidFile $W/apache/httpd.pid
ErrorLog $W/apache/logs/error.log
DefaultRuntimeDir $W/apache
Mutex file:$W/apache
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_fcgi_module /usr/lib/apache2/modules/mod_proxy_fcgi.so
Listen 127.0.0.1:9201
KeepAlive On
MaxKeepAliveRequests 0
StartServers 1
ServerLimit 1
ThreadLimit 16
ThreadsPerChild 16
MaxRequestWorkers 16
<VirtualHost 127.0.0.1:9201>
    ProxyPass / fcgi://127.0.0.1:9100$W/www/ enablereuse=on
</VirtualHost>
CONF
APACHE_RUN_USER=root APACHE_RUN_GROUP=root taskset -c 0 /usr/sbin/apache2 -f "$W/apache/httpd.conf" -DFOREGROUND & PIDS+=($!)
APACHE=${PIDS[-1]}

cat > "$W/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $W/nginx.pid; error_log $W/nginx.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream php { server 127.0.0.1:9100; keepalive 32; }
  server { listen 127.0.0.1:9202;
    location / { fastcgi_pass php; fastcgi_keep_conn on;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $W/www\$fastcgi_script_name; } } }
CONF
taskset -c 0 nginx -c "$W/nginx.conf" -p "$W" & PIDS+=($!)
NGINX=${PIDS[-1]}

ROOT="$W/modproxy"
dist_root "$ROOT" "$BIN" proxy proxy_fcgi
cat > "$ROOT/modproxy.toml" <<CONF
workers = 1
[log]
access_log = "off"
error_log = "$ROOT/error.log"
[[vhost]]
listen = "127.0.0.1:9200"
[vhost.proxy]
pass = [{ path = "/", url = "fcgi://127.0.0.1:9100$W/www/", enable_reuse = true }]
CONF
taskset -c 0 "$BIN/modproxy" -d "$ROOT" run & PIDS+=($!)
OURS=${PIDS[-1]}

for port in 9200 9201 9202; do
  for _ in $(seq 100); do [ "$(curl -s "http://127.0.0.1:$port/small.php")" = ok ] && break; sleep 0.1; done
  [ "$(curl -s "http://127.0.0.1:$port/small.php")" = ok ] || { echo "port $port does not answer ok" >&2; exit 1; }
done

cpu_ticks() {
  local total=0 p
  for p in $1 $(descendants "$1"); do
    [ -r "/proc/$p/stat" ] || continue
    total=$(( total + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat") ))
  done; echo "$total"; }
descendants() { local k; for k in $(cat /proc/"$1"/task/*/children 2>/dev/null); do echo "$k"; descendants "$k"; done; }
HZ=$(getconf CLK_TCK)
printf '%-9s %10s %9s %9s %10s\n' proxy req/s p50 p99 cpu-us/req
for p in "modproxy|$OURS|9200" "apache|$APACHE|9201" "nginx|$NGINX|9202"; do
  IFS='|' read -r who pid port <<<"$p"
  taskset -c 1 wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$port/small.php" >/dev/null 2>&1   # warm-up
  t0=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/small.php" 2>&1)
  t1=$(cpu_ticks "$pid")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
  [ -z "$errors" ] || echo "$who: $errors" >&2
  cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v r="${reqs:-0}" 'BEGIN { if (r > 0) printf "%.1f", t * 1e6 / hz / r; else print "-" }')
  printf '%-9s %10s %9s %9s %10s\n' "$who" "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")" "$cpu"
done
