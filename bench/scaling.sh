#!/usr/bin/env bash
# Throughput against worker threads: modproxy (Example 2, small-keepalive,
# the dist build) with workers = 1..N, pinned to cores 0..workers-1, wrk
# and the two nginx backends on the cores left (or core N-1's sibling set
# when none are left: on a 2-core machine workers = 2 shares with the load).
#
# wrk gets a thread per load core, so that on a machine with cores to
# spare the load generator is not what levels off.
#
# Reading it: while every row has load cores of its own, req/s should
# grow with workers and cpu-us/req stay flat (each worker is its own
# runtime; they share the balancer's lock and the backend pool). A row
# whose cpu-us/req rises is contention; a row whose req/s stops growing
# while cpu-us/req stays flat is the load generator or the backends
# running out of cores (the backends get half the load cores' worth of nginx
# workers).
#
# usage: bench/scaling.sh [MAX_WORKERS=nproc] [--duration 10] [--conns 128]
set -euo pipefail
cd "$(dirname "$0")/.."
MAX=${1:-$(nproc)}; shift || true
CORES=$(nproc)
source bench/lib.sh
bench_args 128 "$@"
build_dist

W=$(mktemp -d -t modproxy-scaling.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

load_cpus() { # the cores not given to modproxy, or the last one
  local n=$1
  if [ "$n" -lt "$CORES" ]; then echo "$n-$((CORES - 1))"; else echo "$((CORES - 1))"; fi
}
load_threads() { local n=$1; if [ "$n" -lt "$CORES" ]; then echo $((CORES - n)); else echo 1; fi; }

# The backends get half the load cores: one nginx worker would cap a
# large machine's rows at what it answers alone.
backends_config "$W" 8080 8081 $(( CORES / 2 > 1 ? CORES / 2 : 1 ))
taskset -c "$(load_cpus 1)" nginx -c "$W/backends.conf" -p "$W" & PIDS+=($!)

printf '%-8s %-12s %12s %9s %11s\n' workers proxy-cores req/s p99 cpu-us/req
for n in $(seq 1 "$MAX"); do
  ROOT="$W/root$n"; dist_root "$ROOT"
  example2_config "$ROOT" 9000 "$n" 8080 8081
  taskset -c "0-$((n - 1))" target/dist/modproxy -d "$ROOT" run & pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:9000/ && break; sleep 0.1; done
  t0=$(cpu_ticks "$pid")
  out=$(taskset -c "$(load_cpus "$n")" wrk -t"$(load_threads "$n")" -c"$CONNS" -d"${DURATION}s" --latency http://127.0.0.1:9000/ 2>&1)
  t1=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  printf '%-8s %-12s %12s %9s %11s\n' "$n" "0-$((n - 1))" "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="99%" {print $2}' <<<"$out")" \
    "$(cpu_us_per_req "$t0" "$t1" "$reqs")"
done
