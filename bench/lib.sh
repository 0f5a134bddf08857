# Shared by the bench scripts: build the `dist` profile (LTO, and PGO when
# llvm-profdata is at hand) and make server roots configured like the peers.
#   build_dist                 -> target/dist: modproxy and the four modules
#   dist_root DIR [LIBDIR [MODULE...]]
#                              -> DIR/mods-available, DIR/mods-enabled (the four
#                                 modules, or those named), libraries from LIBDIR
#   example2_config DIR PORT WORKERS MEMBER_PORT MEMBER_PORT
#                              -> DIR/modproxy.toml: the tutorial's Example 2
#   bench_args CONNS "$@"      -> DURATION (10) and CONNS from --duration N, --conns N
#   need_tools SCRIPT TOOL...  -> exits, naming what to install, if one is missing
#   self_signed_cert DIR       -> DIR/cert.pem, DIR/key.pem, DIR/both.pem (HAProxy's crt)
#   haproxy_config DIR PORT [ALPN]
#                              -> DIR/haproxy.cfg: PORT (TLS with DIR/both.pem
#                                 when ALPN is given), balancing 8080/8081
#   backends_config DIR PORT PORT [WORKERS=1]
#                              -> DIR/backends.conf: the two nginx backends
#                                 (`/`, files from DIR/www, POST /upload)
#   cpu_ticks PID              -> the process's user + system clock ticks
#   sys_ticks PID              -> the system (kernel) part of them
#   cpu_us_per_req T0 T1 REQS  -> CPU µs per request between two cpu_ticks
#                                 readings (`-` when no request was counted)
#   wrk_row WORKLOAD PROXY PID URL
#                              -> one table row: wrk (DURATION, CONNS) on CPU 1
#                                 at URL; req/s, p50, p99, PID's cpu-us/req
#                                 and the system part of it (sys-us/req)
#   wrk_header FIRST_COLUMN    -> wrk_row's header line
#   wrk_rounds DEFAULT_ROUNDS  -> ROUNDS rounds of wrk_row over ROWS
DIST_MODULES=(proxy proxy_http proxy_balancer lbmethod_byrequests)
DIST_PACKAGES=(-p modproxy)
for m in "${DIST_MODULES[@]}"; do DIST_PACKAGES+=(-p "mod_$m"); done

# PGO=0 builds without profile-guided optimisation (bench/pgo.sh).
build_dist() {
  if [ "${PGO:-1}" = 0 ]; then
    cargo build --profile dist "${DIST_PACKAGES[@]}" >&2
  else
    bash bench/pgo.sh >&2
  fi
}

dist_root() {
  local root=$1 libdir=${2:-$PWD/target/dist} m
  local modules=("${@:3}")
  [ ${#modules[@]} -gt 0 ] || modules=("${DIST_MODULES[@]}")
  mkdir -p "$root/mods-available" "$root/mods-enabled"
  for m in "${modules[@]}"; do
    sed "s|^library = .*|library = \"$libdir/libmod_$m.so\"|" "mods-available/$m.toml" > "$root/mods-available/$m.toml"
    ln -sf "../mods-available/$m.toml" "$root/mods-enabled/$m.toml"
  done
}

example2_config() {
  local root=$1 port=$2 workers=$3 a=$4 b=$5
  cat > "$root/modproxy.toml" <<CONF
workers = $workers
[log]
access_log = "off"
error_log = "$root/error.log"
[limits]
max_connections = 20000

[[vhost]]
listen = "127.0.0.1:$port"

[vhost.proxy]
preserve_host = true
pass = [{ path = "/", url = "balancer://mycluster/" }]
pass_reverse = [{ path = "/", url = "balancer://mycluster/" }]

[[vhost.proxy.balancer]]
name = "mycluster"
members = [{ url = "http://127.0.0.1:$a" }, { url = "http://127.0.0.1:$b" }]
CONF
}

backends_config() {
  local dir=$1 a=$2 b=$3 workers=${4:-1}
  cat > "$dir/backends.conf" <<CONF
worker_processes $workers; daemon off; pid $dir/be.pid; error_log $dir/be.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; client_max_body_size 64m;
  server { listen 127.0.0.1:$a reuseport; root $dir/www; location = / { return 200 "Hello world!"; }
    location = /upload { return 200 "ok"; } }
  server { listen 127.0.0.1:$b reuseport; root $dir/www; location = / { return 200 "Howdy world!"; }
    location = /upload { return 200 "ok"; } } }
CONF
}

need_tools() {
  local script=$1 tool; shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
      { echo "$script needs $tool (tests/setup.sh installs it, or apt-get install it)" >&2; exit 1; }
  done
}

# One certificate for every proxy of a run, so each does the same crypto.
self_signed_cert() {
  local dir=$1
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
  cat "$dir/cert.pem" "$dir/key.pem" > "$dir/both.pem"
}

haproxy_config() {
  local dir=$1 port=$2 alpn=${3:-} tls=""
  [ -z "$alpn" ] || tls=" ssl crt $dir/both.pem alpn $alpn"
  cat > "$dir/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:$port$tls
  default_backend mycluster
backend mycluster
  balance roundrobin
  server a 127.0.0.1:8080
  server b 127.0.0.1:8081
CONF
}

bench_args() {
  DURATION=10; CONNS=$1; shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --duration) DURATION="$2"; shift 2;;
      --conns) CONNS="$2"; shift 2;;
      *) echo "unknown argument: $1" >&2; exit 2;;
    esac
  done
}

cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
sys_ticks() { awk '{sub(/^.*\) /, ""); print $13}' "/proc/$1/stat"; }

cpu_us_per_req() {
  awk -v t=$(($2 - $1)) -v hz="$(getconf CLK_TCK)" -v r="${3:-0}" \
    'BEGIN { if (r > 0) printf "%.1f", t * 1e6 / hz / r; else print "-" }'
}

wrk_row() {
  local name=$1 who=$2 pid=$3 url=$4 t0 t1 s0 s1 out reqs
  t0=$(cpu_ticks "$pid"); s0=$(sys_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url" 2>&1)
  t1=$(cpu_ticks "$pid"); s1=$(sys_ticks "$pid")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  printf '%-16s %-22s %10s %9s %9s %10s %10s\n' "$name" "$who" "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")" \
    "$(cpu_us_per_req "$t0" "$t1" "$reqs")" "$(cpu_us_per_req "$s0" "$s1" "$reqs")"
}
# The header line for wrk_row's table; its first column is named $1.
wrk_header() { printf '%-16s %-22s %10s %9s %9s %10s %10s\n' "$1" proxy req/s p50 p99 cpu-us/req sys-us/req; }

# ROWS holds "name|pid|port" entries, proxies of `GET /` on 127.0.0.1:
# waits until each answers, then prints ROUNDS (default $1) rounds of
# wrk_row over them in turn, so the machine's drift falls on all alike.
wrk_rounds() {
  local r who pid port round
  for r in "${ROWS[@]}"; do
    IFS='|' read -r _ _ port <<<"$r"
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  done
  wrk_header round
  for round in $(seq "${ROUNDS:-$1}"); do
    for r in "${ROWS[@]}"; do
      IFS='|' read -r who pid port <<<"$r"
      wrk_row "$round" "$who" "$pid" "http://127.0.0.1:$port/"
    done
  done
}
