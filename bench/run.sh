#!/usr/bin/env bash
# Runs ../shared/bench/peers.sh with modproxy beside nginx, HAProxy and
# Apache: builds the `dist` profile (release with LTO and PGO), makes a
# server root configured like the peers (the tutorial's Example 2 on
# 127.0.0.1:9000 over 8080/8081, all four modules, one worker thread, no
# access log) and passes its command line.
#
# usage: bench/run.sh [WORKERS=1] [peers.sh options...]
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${1:-1}; shift || true
source bench/lib.sh
build_dist
ROOT=$(mktemp -d -t modproxy-bench.XXXXXX)
dist_root "$ROOT"
example2_config "$ROOT" 9000 "$WORKERS" 8080 8081
echo "server root: $ROOT" >&2
PEERS=${PEERS:-../shared/bench/peers.sh}
exec bash "$PEERS" --ours "exec $PWD/target/dist/modproxy -d $ROOT run" "$@"
